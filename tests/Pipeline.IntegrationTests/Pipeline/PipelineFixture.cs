using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;
using Feed.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.DevStack;
using Pipeline.Processor;
using Pipeline.StreamEdge;
using Pipeline.StreamEdge.Delivery;
using Streamiz.Kafka.Net;

namespace Pipeline.IntegrationTests.Pipeline;

/// <summary>
/// The whole pipeline (embedded broker, processor, edge) started once for the test collection, on random
/// loopback ports, exactly as the README's run command composes it.
/// </summary>
public sealed class PipelineFixture : IAsyncLifetime
{
    public const int SubscriberBufferSize = 64;
    public const int ResumeWindow = 40;

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private DevStackHost? _stack;

    public DevStackHost Stack => _stack ?? throw new InvalidOperationException("fixture not started");

    public int GrpcPort { get; } = FreePort();

    public int WebPort { get; } = FreePort();

    public GrpcChannel Channel { get; private set; } = null!;

    public IngestService.IngestServiceClient Ingest => new(Channel);

    public FeedService.FeedServiceClient Feed => new(Channel);

    public EdgeMetrics EdgeMetrics => Stack.App.Services.GetRequiredService<EdgeMetrics>();

    public ProcessorMetrics Metrics => Stack.App.Services.GetRequiredService<ProcessorMetrics>();

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(StartTimeout);
        var settings = new DevStackSettings
        {
            KafkaPort = 0,
            GrpcPort = GrpcPort,
            WebPort = WebPort,
            Partitions = 3,
            StatusInterval = TimeSpan.Zero,
            Overrides = new Dictionary<string, string?>
            {
                ["Logging:LogLevel:Default"] = "Warning",

                // Small bounds, so tests reach them: heartbeats, the slow-reader cut-off and the resume window.
                [$"Edge:{nameof(EdgeOptions.HeartbeatInterval)}"] = "00:00:00.300",
                [$"Edge:{nameof(EdgeOptions.SubscriberBufferSize)}"] = SubscriberBufferSize.ToString(CultureInfo.InvariantCulture),
                [$"Edge:{nameof(EdgeOptions.ResumeWindow)}"] = ResumeWindow.ToString(CultureInfo.InvariantCulture),
            },
        };
        _stack = await DevStackHost.CreateAsync(settings, [], timeout.Token);
        await _stack.App.StartAsync(timeout.Token);

        var processor = _stack.App.Services.GetRequiredService<FeedProcessorService>();
        var edge = _stack.App.Services.GetRequiredService<EdgeReadiness>();
        while (processor.State != KafkaStream.State.RUNNING || !edge.IsReady)
        {
            await Task.Delay(50, timeout.Token);
        }

        Channel = GrpcChannel.ForAddress($"http://127.0.0.1:{GrpcPort}");
    }

    public async Task DisposeAsync()
    {
        Channel?.Dispose();
        if (_stack is not null)
        {
            await _stack.App.StopAsync();
            await _stack.DisposeAsync();
        }
    }

    /// <summary>
    /// Follows through the ingest API and waits until the processor applied it. Follows travel through a
    /// repartition topic and posts do not, so a post sent right after a follow could overtake it. Tests in the
    /// collection run one at a time, so the counter moving means this follow landed.
    /// </summary>
    public async Task FollowAsync(string follower, string followee, CancellationToken cancellationToken)
    {
        var applied = Metrics.FollowsIn;
        await Ingest.FollowAsync(new FollowRequest { FollowerId = follower, FolloweeId = followee }, cancellationToken: cancellationToken);
        while (Metrics.FollowsIn <= applied)
        {
            await Task.Delay(20, cancellationToken);
        }
    }

    /// <summary>Opens a subscription and waits for its response headers, which the edge sends once registered.</summary>
    public async Task<AsyncServerStreamingCall<FeedEvent>> SubscribeAsync(string user, CancellationToken cancellationToken)
    {
        var call = Feed.Subscribe(new SubscribeRequest { UserId = user }, cancellationToken: cancellationToken);
        await call.ResponseHeadersAsync.WaitAsync(cancellationToken);
        return call;
    }

    /// <summary>End offsets of every partition of <paramref name="topic"/>, summed: how many records it holds.</summary>
    public long RecordCount(string topic)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = Stack.BootstrapServers, GroupId = "test-inspector" }).Build();
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = Stack.BootstrapServers }).Build();
        var partitions = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.Single().Partitions;
        return partitions.Sum(p => consumer.QueryWatermarkOffsets(new TopicPartition(topic, p.PartitionId), TimeSpan.FromSeconds(10)).High.Value);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

[CollectionDefinition(Name)]
public sealed class PipelineTestGroup : ICollectionFixture<PipelineFixture>
{
    public const string Name = "pipeline";
}
