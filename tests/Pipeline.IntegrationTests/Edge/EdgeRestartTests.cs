using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.DevStack;
using Pipeline.IntegrationTests.Pipeline;
using Pipeline.IntegrationTests.Support;
using Pipeline.Kafka;
using Pipeline.Kafka.Embedded;
using Pipeline.Kafka.Topics;
using Pipeline.Processor;
using Pipeline.StreamEdge;
using Pipeline.StreamEdge.Delivery;
using Streamiz.Kafka.Net;
using Xunit.Abstractions;

namespace Pipeline.IntegrationTests.Edge;

/// <summary>
/// The edge restarted under attached subscribers — once keeping its state directory, once with it wiped so the
/// replica is rebuilt from feed.updates — while posts keep flowing into Kafka, the edge ends streams from the
/// server side and clients cancel their own: every subscriber resumes from its cursor and ends with exactly its feed.
/// </summary>
public sealed class EdgeRestartTests : IAsyncLifetime
{
    private const int Authors = 20;
    private const int FollowersPerAuthor = 2;
    private const int RoundsAfterRestarts = 5;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    private readonly ITestOutputHelper _output;
    private readonly string _stateDir = Path.Combine(Path.GetTempPath(), "edge-restart-tests", Guid.NewGuid().ToString("N"));
    private readonly int _grpcPort = PipelineFixture.FreePort();
    private readonly RecentLogs _logs = new();
    private EmbeddedKafkaCluster _cluster = null!;
    private IHost _processor = null!;
    private WebApplication? _edge;

    public EdgeRestartTests(ITestOutputHelper output)
    {
        _output = output;
    }

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        _cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0, DefaultPartitions = 3 });
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(Settings());
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        _logs.AddTo(builder.Logging);
        builder.Services.AddFeedProcessor();
        _processor = builder.Build();
        var plan = _processor.Services.GetRequiredService<FeedTopicPlan>();
        await new TopicProvisioner(_cluster.BootstrapServers, _cluster, _processor.Services.GetRequiredService<ILogger<TopicProvisioner>>()).EnsureAsync(plan.All(), timeout.Token);
        await _processor.StartAsync(timeout.Token);
        var service = _processor.Services.GetRequiredService<FeedProcessorService>();
        await ProcessorProbe.WaitUntilAsync(_processor.Services, _cluster.BootstrapServers, _logs, () => service.State == KafkaStream.State.RUNNING, "the processor to run", timeout.Token);

        await StartEdgeAsync(timeout.Token);
    }

    public async Task DisposeAsync()
    {
        await StopEdgeAsync();
        await _processor.StopAsync();
        _processor.Dispose();
        await _cluster.DisposeAsync();
        Directory.Delete(_stateDir, recursive: true);
    }

    [Fact]
    public async Task EdgeRestarts_KeptAndWipedState_EverySubscriberResumesWithNoGapAndNoDuplicate()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers, Partitioner = Partitioner.Murmur2Random }).Build();
        var processorMetrics = _processor.Services.GetRequiredService<ProcessorMetrics>();
        var follows = 0;
        for (var a = 0; a < Authors; a++)
        {
            for (var f = 0; f < FollowersPerAuthor; f++)
            {
                var follow = new FollowEvent { EventId = $"e{a}-{f}", FollowerId = Follower(a, f), FolloweeId = Author(a), Action = FollowAction.Follow, OccurredAtMs = 1 };
                await producer.ProduceAsync(FeedTopics.Follows, new Message<string, byte[]> { Key = follow.FollowerId, Value = follow.ToByteArray() }, timeout.Token);
                follows++;
            }
        }

        await ProcessorProbe.WaitUntilAsync(_processor.Services, _cluster.BootstrapServers, _logs, () => processorMetrics.FollowsIn >= follows, $"the processor to apply {follows} follows", timeout.Token);

        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{_grpcPort}", new DevTokens().ChannelOptions("restart-test", service: true));
        var client = new FeedService.FeedServiceClient(channel);
        var subscribers = Enumerable.Range(0, Authors)
            .SelectMany(a => Enumerable.Range(0, FollowersPerAuthor).Select(f => new ResumingSubscriber(client, Follower(a, f))))
            .ToList();
        foreach (var subscriber in subscribers)
        {
            await subscriber.StartAsync(timeout.Token);
        }

        // Posts flow in rounds (one post per author) for as long as the restarts take, plus a few rounds after, so
        // every subscriber is mid-stream at each restart however slow the machine is.
        using var restartsDone = new CancellationTokenSource();
        using var stopReading = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var reading = subscribers.Select(s => s.ReadAsync(stopReading)).ToList();
        var posting = Task.Run(
            async () =>
            {
                var rounds = 0;
                for (var after = 0; after < RoundsAfterRestarts; rounds++)
                {
                    for (var a = 0; a < Authors; a++)
                    {
                        var post = new PostEvent { PostId = PostId(a, rounds), AuthorId = Author(a), Action = PostAction.Created, Body = "b", CreatedAtMs = 1, OccurredAtMs = 1 };
                        producer.Produce(FeedTopics.Posts, new Message<string, byte[]> { Key = post.AuthorId, Value = post.ToByteArray() });
                    }

                    producer.Flush(timeout.Token);
                    await Task.Delay(40, timeout.Token);
                    after += restartsDone.IsCancellationRequested ? 1 : 0;
                }

                return rounds;
            },
            timeout.Token);

        // Between restarts the edge also ends streams from the server side, and the clients cancel their own
        // calls after every few updates: all three kinds of disconnect land on the same subscribers at once.
        using var stopKilling = new CancellationTokenSource();
        var serverKills = 0;
        var killing = Task.Run(async () =>
        {
            while (!stopKilling.IsCancellationRequested)
            {
                try
                {
                    _edge?.Services.GetRequiredService<SubscriberRegistry>().CompleteAll();
                    serverKills++;
                }
                catch (ObjectDisposedException)
                {
                    // The edge is restarting.
                }

                await Task.Delay(150, CancellationToken.None);
            }
        });
        try
        {
            await RestartEdgeAsync(wipeState: false, subscribers, timeout.Token);
            await RestartEdgeAsync(wipeState: true, subscribers, timeout.Token);
        }
        finally
        {
            await restartsDone.CancelAsync();
            await stopKilling.CancelAsync();
            await killing;
        }

        var postsPerAuthor = await posting;
        await ProcessorProbe.WaitUntilAsync(
            _processor.Services,
            _cluster.BootstrapServers,
            _logs,
            () => subscribers.All(s => s.ReceivedCount >= postsPerAuthor) || reading.Any(r => r.IsFaulted),
            $"every subscriber to receive its {postsPerAuthor} posts",
            timeout.Token,
            () => "behind: " + string.Join(", ", subscribers.Where(s => s.ReceivedCount < postsPerAuthor).Select(s => $"{s.User} has {s.ReceivedCount} ({s.State})")));
        if (reading.FirstOrDefault(r => r.IsFaulted) is { } failed)
        {
            // A subscriber stopped reading: its exception says why (a status the client does not resume on, a reset).
            await failed;
        }

        await stopReading.CancelAsync();
        await Task.WhenAll(reading).WaitAsync(timeout.Token);
        foreach (var (subscriber, index) in subscribers.Select((s, i) => (s, i)))
        {
            var author = index / FollowersPerAuthor;
            Assert.Equal(Enumerable.Range(0, postsPerAuthor).Select(i => PostId(author, i)), subscriber.Received);
        }

        Assert.All(subscribers, s => Assert.True(s.Reconnects >= 2, $"{s.User} reconnected only {s.Reconnects} times"));
        var disconnects = subscribers.Sum(s => s.Reconnects + s.ClientCancels);
        _output.WriteLine($"{disconnects} disconnects: {subscribers.Sum(s => s.ClientCancels)} client cancels, {subscribers.Sum(s => s.Reconnects)} streams ended or refused by the server ({serverKills} kill sweeps, 2 edge restarts)");
        Assert.True(disconnects >= 200, $"only {disconnects} disconnects");
    }

    private async Task RestartEdgeAsync(bool wipeState, List<ResumingSubscriber> subscribers, CancellationToken cancellationToken)
    {
        await Task.Delay(300, cancellationToken);
        var reconnectsBefore = subscribers.Sum(s => s.Reconnects);
        await StopEdgeAsync();
        if (wipeState)
        {
            Directory.Delete(Path.Combine(_stateDir, "edge"), recursive: true);
        }

        var stopwatch = Stopwatch.StartNew();
        await StartEdgeAsync(cancellationToken);
        while (subscribers.Sum(s => s.Reconnects) < reconnectsBefore + subscribers.Count)
        {
            await Task.Delay(10, cancellationToken);
        }

        _output.WriteLine($"edge restart (wiped state: {wipeState}): {subscribers.Count} subscribers resumed {stopwatch.ElapsedMilliseconds} ms after the edge started");
    }

    private async Task StartEdgeAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddInMemoryCollection(Settings());
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        _logs.AddTo(builder.Logging);
        builder.AddStreamEdge();
        var edge = builder.Build();
        edge.MapStreamEdge();
        await edge.StartAsync(cancellationToken);
        var readiness = edge.Services.GetRequiredService<EdgeReadiness>();
        while (!readiness.IsReady)
        {
            await Task.Delay(20, cancellationToken);
        }

        _edge = edge;
    }

    private async Task StopEdgeAsync()
    {
        if (_edge is not null)
        {
            await _edge.StopAsync();
            await _edge.DisposeAsync();
            _edge = null;
        }
    }

    private Dictionary<string, string?> Settings() => new()
    {
        ["Kafka:BootstrapServers"] = _cluster.BootstrapServers,
        ["Processor:ApplicationId"] = "edge-restart-test",
        ["Processor:StateDir"] = Path.Combine(_stateDir, "processor"),
        ["Processor:ProvisionTopics"] = "false",
        ["Processor:TopicPartitions"] = "3",
        ["Processor:ReplicationFactor"] = "1",
        ["Edge:StateDir"] = Path.Combine(_stateDir, "edge"),
        ["Edge:ApplyThreads"] = "2",
        ["Edge:CursorSigningKey"] = Convert.ToBase64String(new byte[32]),
        ["Auth:Issuer"] = DevTokens.Issuer,
        ["Auth:Audience"] = DevTokens.Audience,
        ["Auth:SigningKeys:0"] = DevTokens.SigningKey,
        ["Kestrel:Endpoints:Grpc:Url"] = $"http://127.0.0.1:{_grpcPort.ToString(CultureInfo.InvariantCulture)}",
        ["Kestrel:Endpoints:Grpc:Protocols"] = "Http2",
        ["Kestrel:Endpoints:Web:Url"] = "http://127.0.0.1:0",
        ["Kestrel:Endpoints:Web:Protocols"] = "Http1",
    };

    private static string Author(int a) => $"restart-author-{a}";

    private static string Follower(int a, int f) => $"restart-follower-{a}-{f}";

    private static string PostId(int a, int i) => $"a{a}-p{i:D3}";

    /// <summary>A client that keeps its feed: on any stream error it resubscribes with the last cursor it saw.</summary>
    private sealed class ResumingSubscriber(FeedService.FeedServiceClient client, string user)
    {
        private string _cursor = "";
        private int _reconnects;
        private int _received;
        private int _clientCancels;

        public string User => user;

        public List<string> Received { get; } = [];

        public int ReceivedCount => Volatile.Read(ref _received);

        /// <summary>What the reader was last doing (for a timeout's report).</summary>
        public string State { get; private set; } = "not started";

        /// <summary>Streams ended by the server (kill sweeps, restarts) and resumed.</summary>
        public int Reconnects => Volatile.Read(ref _reconnects);

        /// <summary>Streams this client cancelled itself and resumed.</summary>
        public int ClientCancels => Volatile.Read(ref _clientCancels);

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            using var call = client.Subscribe(new SubscribeRequest { UserId = user }, cancellationToken: cancellationToken);
            Assert.True(await call.ResponseStream.MoveNext(cancellationToken));
            _cursor = call.ResponseStream.Current.Cursor;
        }

        /// <summary>Reads until <paramref name="stop"/> is cancelled; stream errors are reconnects, anything else fails the test.</summary>
        public async Task ReadAsync(CancellationTokenSource stop)
        {
            try
            {
                await ReadUntilStoppedAsync(stop);
            }
            catch (Exception ex) when (!stop.IsCancellationRequested)
            {
                throw new InvalidOperationException($"{user} stopped reading after {ReceivedCount} posts and {Reconnects} reconnects: {ex.Message}", ex);
            }
        }

        private async Task ReadUntilStoppedAsync(CancellationTokenSource stop)
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    State = "subscribing";
                    using var call = client.Subscribe(new SubscribeRequest { UserId = user, Cursor = _cursor }, cancellationToken: stop.Token);
                    State = "reading";
                    while (await call.ResponseStream.MoveNext(stop.Token))
                    {
                        var feedEvent = call.ResponseStream.Current;
                        Assert.NotEqual(FeedEvent.EventOneofCase.Reset, feedEvent.EventCase);
                        _cursor = feedEvent.Cursor;
                        if (feedEvent.EventCase == FeedEvent.EventOneofCase.Added)
                        {
                            Received.Add(feedEvent.Added.Post.PostId);
                            Interlocked.Increment(ref _received);
                            if (Random.Shared.Next(3) == 0)
                            {
                                // Leaving the block cancels the call, as a client that goes away does.
                                Interlocked.Increment(ref _clientCancels);
                                break;
                            }
                        }
                    }
                }
                catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown && !stop.IsCancellationRequested)
                {
                    Interlocked.Increment(ref _reconnects);
                    State = $"retrying after {ex.StatusCode}";
                    await Task.Delay(25, stop.Token);
                }
                catch (Exception) when (stop.IsCancellationRequested)
                {
                    return;
                }
            }
        }
    }
}
