using System.Globalization;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Net.Client.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pipeline.DevStack;
using Pipeline.IntegrationTests.Pipeline;
using Pipeline.Kafka;
using Pipeline.Kafka.Embedded;
using Pipeline.StreamEdge;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.IntegrationTests.Edge;

public sealed class EdgeReadinessTests : IAsyncDisposable
{
    private static readonly TimeSpan TrafficBound = TimeSpan.FromSeconds(60);
    private static readonly DevTokens Tokens = new();
    private const long MaxUpdates = 400_000;
    private readonly string _stateDir = Path.Combine(Path.GetTempPath(), "edge-readiness-tests", Guid.NewGuid().ToString("N"));
    private readonly EmbeddedKafkaCluster _cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0, DefaultPartitions = 3 });

    /// <summary>
    /// feed.updates never goes quiet in production. The edge serves once it has read every partition to its end
    /// (the consumer's end-of-partition events); that must still happen while transactions keep committing into
    /// every partition back to back (bounded in count and time), not only once traffic pauses.
    /// </summary>
    [Fact]
    public async Task Edge_BecomesReady_WhileTransactionalTrafficKeepsFlowing()
    {
        _cluster.CreateTopic(FeedTopics.FeedUpdates, 3, 1);
        using var traffic = new CancellationTokenSource(TrafficBound);
        long produced = 0;
        var producing = Task.Run(() => Produce(traffic.Token, ref produced), CancellationToken.None);
        while (Interlocked.Read(ref produced) < 2_000 && !producing.IsCompleted)
        {
            await Task.Delay(20);
        }

        await using var edge = StartEdge(PipelineFixture.FreePort(), PipelineFixture.FreePort());
        await edge.StartAsync(traffic.Token);
        var readiness = edge.Services.GetRequiredService<EdgeReadiness>();
        while (!readiness.IsReady && !traffic.IsCancellationRequested)
        {
            await Task.Delay(20, CancellationToken.None);
        }

        var flowingWhenReady = !producing.IsCompleted && !traffic.IsCancellationRequested;
        var producedWhenReady = Interlocked.Read(ref produced);
        await traffic.CancelAsync();
        await producing;
        await edge.StopAsync(CancellationToken.None);

        Assert.True(readiness.IsReady, $"the edge never became ready within {TrafficBound.TotalSeconds} s of steady traffic");
        Assert.True(flowingWhenReady, "traffic had stopped before the edge became ready, so the test proved nothing");
        Assert.True(producedWhenReady > 2_000, $"produced {producedWhenReady} updates before the edge was ready");
    }

    /// <summary>
    /// A feed stream opened before the edge has caught up is authenticated, then waits, and goes on into the handler
    /// the moment the edge is ready (its response headers arrive: it is registered); one held at shutdown is
    /// released with UNAVAILABLE, long before its hold time. A caller without a valid token is refused at once, not
    /// held.
    /// </summary>
    [Fact]
    public async Task NotReady_FeedStreamsAreHeld_ThenProceedWhenReady_OrEndUnavailableAtShutdown()
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using (var edge = StartEdge(PipelineFixture.FreePort(), PipelineFixture.FreePort(), notReadyHoldTime: TimeSpan.FromMinutes(2)))
        {
            await edge.StartAsync(CancellationToken.None);
            using var channel = GrpcChannel.ForAddress(edge.Configuration["Kestrel:Endpoints:Grpc:Url"]!);
            var client = new FeedService.FeedServiceClient(channel);

            var anonymous = await Assert.ThrowsAsync<RpcException>(() => OpenAndReadAsync(client, token: null, bound.Token).WaitAsync(TimeSpan.FromSeconds(20), bound.Token));
            Assert.Equal(StatusCode.Unauthenticated, anonymous.StatusCode);

            using var call = client.Subscribe(new SubscribeRequest { UserId = "alice" }, Bearer(Tokens.Mint("alice")), cancellationToken: bound.Token);
            var headers = call.ResponseHeadersAsync;
            await Task.Delay(500, bound.Token);
            Assert.False(headers.IsCompleted, "the stream was not held");

            edge.Services.GetRequiredService<EdgeReadiness>().MarkCaughtUp();

            await headers.WaitAsync(TimeSpan.FromSeconds(20), bound.Token);
            await WaitForAsync(() => edge.Services.GetRequiredService<SubscriberRegistry>().HasSubscribers("alice"), bound.Token);
            await edge.StopAsync(CancellationToken.None);
        }

        // An edge that never catches up: its held stream is released by the shutdown.
        await using (var stopping = StartEdge(PipelineFixture.FreePort(), PipelineFixture.FreePort(), notReadyHoldTime: TimeSpan.FromMinutes(2)))
        {
            await stopping.StartAsync(CancellationToken.None);
            using var channel = GrpcChannel.ForAddress(stopping.Configuration["Kestrel:Endpoints:Grpc:Url"]!);
            var held = Assert.ThrowsAsync<RpcException>(() => OpenAndReadAsync(new FeedService.FeedServiceClient(channel), Tokens.Mint("alice"), bound.Token));
            await Task.Delay(500, bound.Token);
            Assert.False(held.IsCompleted, "the stream was not held");

            await stopping.StopAsync(bound.Token);

            var released = await held;
            Assert.Equal(StatusCode.Unavailable, released.StatusCode);
            Assert.Contains("still building its feed replica", released.Status.Detail, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// Before it has caught up (here: feed.updates does not exist yet, so it never does), the edge refuses
    /// authenticated feed streams with UNAVAILABLE once their hold time has passed, over gRPC and grpc-web alike,
    /// while health answers.
    /// </summary>
    [Fact]
    public async Task NotReady_FeedStreamsAreUnavailable_AfterTheirHoldTime_HealthStillAnswers()
    {
        var (grpcPort, webPort) = (PipelineFixture.FreePort(), PipelineFixture.FreePort());
        await using var edge = StartEdge(grpcPort, webPort);
        await edge.StartAsync(CancellationToken.None);
        Assert.False(edge.Services.GetRequiredService<EdgeReadiness>().IsReady);
        using var native = GrpcChannel.ForAddress($"http://127.0.0.1:{grpcPort}");
        using var web = GrpcChannel.ForAddress($"http://127.0.0.1:{webPort}", new GrpcChannelOptions
        {
            HttpHandler = new GrpcWebHandler(GrpcWebMode.GrpcWebText, new HttpClientHandler()),
            HttpVersion = new Version(1, 1),
            HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        });

        foreach (var channel in new[] { native, web })
        {
            var client = new FeedService.FeedServiceClient(channel);
            var service = Bearer(Tokens.Mint("some-service", service: true));
            var subscribe = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                using var call = client.Subscribe(new SubscribeRequest { UserId = "alice" }, service);
                await call.ResponseStream.MoveNext(CancellationToken.None);
            });
            var partitions = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                using var call = client.SubscribePartitions(new SubscribePartitionsRequest { FirstPartition = 0, LastPartition = 0 }, service);
                await call.ResponseStream.MoveNext(CancellationToken.None);
            });

            Assert.Equal(StatusCode.Unavailable, subscribe.StatusCode);
            Assert.Contains("still building its feed replica", subscribe.Status.Detail, StringComparison.Ordinal);
            Assert.Equal(StatusCode.Unavailable, partitions.StatusCode);
        }

        var health = await new Health.HealthClient(native).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, health.Status);
        await edge.StopAsync(CancellationToken.None);
    }

    /// <summary>
    /// An edge started before its brokers (or while they are unreachable) waits for them, unready and saying why in
    /// its health check, and becomes ready once they answer: it does not stop.
    /// </summary>
    [Fact]
    public async Task StartedBeforeKafka_WaitsUnready_ThenServesWhenTheBrokersAnswer()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var kafkaPort = PipelineFixture.FreePort();
        await using var edge = StartEdge(PipelineFixture.FreePort(), PipelineFixture.FreePort(), bootstrapServers: $"127.0.0.1:{kafkaPort.ToString(CultureInfo.InvariantCulture)}");
        await edge.StartAsync(timeout.Token);
        var readiness = edge.Services.GetRequiredService<EdgeReadiness>();
        var stopping = edge.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().ApplicationStopping;

        // At least one metadata request has failed (nothing listens on the port yet) and the host is still up.
        string? health = null;
        while (health?.Contains("cannot read Kafka's metadata", StringComparison.Ordinal) != true)
        {
            await Task.Delay(100, timeout.Token);
            health = (await readiness.CheckHealthAsync(null!, timeout.Token)).Description;
        }

        Assert.False(stopping.IsCancellationRequested);
        Assert.False(readiness.IsReady);
        Assert.Contains("Kafka:BootstrapServers", health, StringComparison.Ordinal);

        // The brokers come up on that address, with the topic: the edge catches up and serves.
        using var late = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = kafkaPort, DefaultPartitions = 3 });
        late.CreateTopic(FeedTopics.FeedUpdates, 3, 1);
        Assert.True(await readiness.WaitUntilReadyAsync(TimeSpan.FromSeconds(60), timeout.Token), "the edge did not become ready after the brokers came up");
        Assert.False(stopping.IsCancellationRequested);
        await edge.StopAsync(timeout.Token);
    }

    /// <summary>Alice's feed, read until the stream fails.</summary>
    private static async Task OpenAndReadAsync(FeedService.FeedServiceClient client, string? token, CancellationToken cancellationToken)
    {
        using var call = client.Subscribe(new SubscribeRequest { UserId = "alice" }, token is null ? null : Bearer(token), cancellationToken: cancellationToken);
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
        }
    }

    private static Grpc.Core.Metadata Bearer(string token) => new() { { "Authorization", $"Bearer {token}" } };

    private static async Task WaitForAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        while (!condition())
        {
            await Task.Delay(20, cancellationToken);
        }
    }

    public ValueTask DisposeAsync()
    {
        _cluster.Dispose();
        try
        {
            Directory.Delete(_stateDir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Updates to every partition, 200 per transaction, back to back, until cancelled or <see cref="MaxUpdates"/>.</summary>
    private void Produce(CancellationToken cancellationToken, ref long produced)
    {
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig
        {
            BootstrapServers = _cluster.BootstrapServers,
            TransactionalId = $"readiness-test-{Guid.NewGuid():N}",
            LingerMs = 1,
        }).Build();
        producer.InitTransactions(TimeSpan.FromSeconds(30));
        var sequence = 0;
        while (!cancellationToken.IsCancellationRequested && sequence < MaxUpdates)
        {
            producer.BeginTransaction();
            for (var i = 0; i < 200; i++, sequence++)
            {
                var user = $"reader-{sequence % 50}";
                var update = new FeedUpdate
                {
                    RecipientId = user,
                    Kind = FeedUpdateKind.Added,
                    Cause = FeedCause.Live,
                    Post = new Post { PostId = $"p{sequence}", AuthorId = "author", Body = "steady", CreatedAtMs = 1 },
                    SourceOccurredAtMs = 1,
                };
                producer.Produce(FeedTopics.FeedUpdates, new Message<string, byte[]> { Key = user, Value = update.ToByteArray() });
            }

            producer.CommitTransaction(TimeSpan.FromSeconds(30));
            Interlocked.Add(ref produced, 200);
        }
    }

    private WebApplication StartEdge(int grpcPort, int webPort, TimeSpan? notReadyHoldTime = null, string? bootstrapServers = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kafka:BootstrapServers"] = bootstrapServers ?? _cluster.BootstrapServers,
            ["Edge:StateDir"] = _stateDir,
            ["Edge:CursorSigningKey"] = Convert.ToBase64String(new byte[32]),
            ["Auth:Issuer"] = DevTokens.Issuer,
            ["Auth:Audience"] = DevTokens.Audience,
            ["Auth:SigningKeys:0"] = DevTokens.SigningKey,
            ["Kestrel:Endpoints:Grpc:Url"] = $"http://127.0.0.1:{grpcPort.ToString(CultureInfo.InvariantCulture)}",
            ["Kestrel:Endpoints:Grpc:Protocols"] = "Http2",
            ["Kestrel:Endpoints:Web:Url"] = $"http://127.0.0.1:{webPort.ToString(CultureInfo.InvariantCulture)}",
            ["Kestrel:Endpoints:Web:Protocols"] = "Http1",
            ["Edge:NotReadyHoldTime"] = (notReadyHoldTime ?? TimeSpan.FromMilliseconds(200)).ToString("c", CultureInfo.InvariantCulture),
        });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.AddStreamEdge();
        var edge = builder.Build();
        edge.MapStreamEdge();
        return edge;
    }
}
