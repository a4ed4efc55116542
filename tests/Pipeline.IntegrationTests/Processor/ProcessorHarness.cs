using System.Globalization;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Kafka;
using Pipeline.Kafka.Embedded;
using Pipeline.Kafka.Topics;
using Pipeline.Processor;
using Pipeline.UnitTests.Processor;
using Streamiz.Kafka.Net;

namespace Pipeline.IntegrationTests.Processor;

/// <summary>One record of feed.updates as a subscriber sees it, with the partition it was read from.</summary>
internal sealed record ObservedUpdate(int Partition, string User, FeedUpdateKind Kind, string Author, string PostId);

/// <summary>
/// The embedded broker with the real processor host on it. The test can stop the processor and start it again
/// (with its state directory or without) while the broker, the topics and the producer keep running.
/// </summary>
internal sealed class ProcessorHarness : IAsyncDisposable
{
    public const int Partitions = 3;

    private readonly EmbeddedKafkaCluster _cluster;
    private readonly Dictionary<string, string?> _settings;
    private readonly string _stateDir;
    private readonly IProducer<string, byte[]> _producer;
    private IHost? _processor;
    private long _appliedByEarlierRuns;

    private ProcessorHarness(EmbeddedKafkaCluster cluster, int backfillSize, int feedSize, DeliveryGuarantee guarantee)
    {
        _cluster = cluster;
        BackfillSize = backfillSize;
        FeedSize = feedSize;
        _stateDir = Path.Combine(Path.GetTempPath(), "feed-processor-tests", Guid.NewGuid().ToString("N"));
        _settings = new Dictionary<string, string?>
        {
            ["Kafka:BootstrapServers"] = cluster.BootstrapServers,
            ["Processor:ApplicationId"] = $"feed-it-{Guid.NewGuid():N}",
            ["Processor:StateDir"] = _stateDir,
            ["Processor:ProvisionTopics"] = "false",
            ["Processor:TopicPartitions"] = Partitions.ToString(CultureInfo.InvariantCulture),
            ["Processor:ReplicationFactor"] = "1",
            ["Processor:BackfillSize"] = backfillSize.ToString(CultureInfo.InvariantCulture),
            ["Processor:FeedSize"] = feedSize.ToString(CultureInfo.InvariantCulture),

            // Tests wait for every event before producing the next; at the default 50 ms each fetch of the two
            // hops would dominate the run time.
            ["Processor:FetchWaitMaxMs"] = "5",
            ["Processor:Guarantee"] = guarantee.ToString(),

            // The embedded broker holds a group's next rebalance for the leaver's session timeout less a second.
            ["Processor:SessionTimeoutMs"] = "6000",
        };
        _producer = new ProducerBuilder<string, byte[]>(new ProducerConfig
        {
            BootstrapServers = cluster.BootstrapServers,

            // The partitioning contract: every producer of the input topics uses Java's default partitioner.
            Partitioner = Partitioner.Murmur2Random,
            EnableIdempotence = true,
            LingerMs = 0,
        }).Build();
    }

    public int BackfillSize { get; }

    public int FeedSize { get; }

    /// <summary>Input records the author stage has taken in, summed over every run of the processor.</summary>
    public long TotalApplied => _appliedByEarlierRuns + Applied;

    /// <summary>Input records the running processor's author stage has taken in; each run counts from zero.</summary>
    private long Applied
    {
        get
        {
            if (_processor is null)
            {
                return 0;
            }

            var metrics = _processor.Services.GetRequiredService<ProcessorMetrics>();
            return metrics.FollowsIn + metrics.PostsIn;
        }
    }

    /// <summary>Starts the broker and creates every topic of the processor's plan: the mock has no CreateTopics API.</summary>
    public static async Task<ProcessorHarness> CreateAsync(int backfillSize, int feedSize, CancellationToken cancellationToken, DeliveryGuarantee guarantee = DeliveryGuarantee.ExactlyOnce)
    {
        var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0, DefaultPartitions = Partitions });
        var harness = new ProcessorHarness(cluster, backfillSize, feedSize, guarantee);
        try
        {
            using var host = harness.BuildProcessor(NullLoggerFactory.Instance);
            var plan = host.Services.GetRequiredService<FeedTopicPlan>();
            await new TopicProvisioner(cluster.BootstrapServers, cluster, NullLogger<TopicProvisioner>.Instance).EnsureAsync(plan.All(), cancellationToken);
            return harness;
        }
        catch
        {
            await harness.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts a new processor host on the same application id and state directory and waits until it runs.</summary>
    public async Task StartProcessorAsync(CancellationToken cancellationToken)
    {
        if (_processor is not null)
        {
            throw new InvalidOperationException("the processor is already running");
        }

        // Quiet hosts: the test output is about feeds, not the processor's start-up lines.
        _processor = BuildProcessor(NullLoggerFactory.Instance);
        await _processor.StartAsync(cancellationToken);
        await WaitUntilRunningAsync(_processor, cancellationToken);
    }

    /// <summary>Stops the processor as a host shutdown does: Streamiz commits, closes its tasks and leaves the group.</summary>
    public async Task StopProcessorAsync(CancellationToken cancellationToken)
    {
        var processor = _processor ?? throw new InvalidOperationException("the processor is not running");
        await processor.StopAsync(cancellationToken);
        _appliedByEarlierRuns += Applied;
        _processor = null;
        processor.Dispose();
    }

    /// <summary>Deletes the RocksDB state, so that the next start restores every store from its changelog.</summary>
    public void WipeState()
    {
        if (_processor is not null)
        {
            throw new InvalidOperationException("stop the processor before wiping its state");
        }

        if (Directory.Exists(_stateDir))
        {
            Directory.Delete(_stateDir, recursive: true);
        }
    }

    public async Task ProduceAsync(FeedInput input, CancellationToken cancellationToken)
    {
        var (topic, message) = ToRecord(input);
        await _producer.ProduceAsync(topic, message, cancellationToken);
    }

    /// <summary>
    /// Produces <paramref name="input"/> and waits until the author stage has taken it in. From there its commands
    /// reach each recipient in the order the stage emitted them (one producer per stream thread, one partition per
    /// recipient), so an event produced afterwards, on whichever topic, cannot overtake it.
    /// </summary>
    public async Task ApplyAsync(FeedInput input, CancellationToken cancellationToken)
    {
        var target = TotalApplied + 1;
        await ProduceAsync(input, cancellationToken);
        await WaitUntilAppliedAsync(target, cancellationToken);
    }

    public async Task WaitUntilAppliedAsync(long total, CancellationToken cancellationToken)
    {
        while (TotalApplied < total)
        {
            await Task.Delay(2, cancellationToken);
        }
    }

    /// <summary>Every committed record of feed.updates, per partition in offset order: one total order per user.</summary>
    public Task<List<ObservedUpdate>> ReadUpdatesAsync(CancellationToken cancellationToken) =>
        Task.Run(
            () =>
            {
                using var consumer = new ConsumerBuilder<string, FeedUpdate>(new ConsumerConfig
                {
                    BootstrapServers = _cluster.BootstrapServers,
                    GroupId = $"updates-reader-{Guid.NewGuid():N}",
                    IsolationLevel = IsolationLevel.ReadCommitted,
                    EnableAutoCommit = false,
                    EnablePartitionEof = true,
                })
                    .SetValueDeserializer(ProtobufDeserializer<FeedUpdate>.Instance)
                    .Build();
                var partitions = Enumerable.Range(0, Partitions).Select(p => new TopicPartition(FeedTopics.FeedUpdates, p)).ToList();
                consumer.Assign(partitions.Select(p => new TopicPartitionOffset(p, Offset.Beginning)));
                var updates = new List<ObservedUpdate>();
                var unfinished = partitions.ToHashSet();
                while (unfinished.Count > 0)
                {
                    var result = consumer.Consume(cancellationToken);
                    if (result.IsPartitionEOF)
                    {
                        unfinished.Remove(result.TopicPartition);
                    }
                    else
                    {
                        var update = result.Message.Value;
                        updates.Add(new ObservedUpdate(result.Partition.Value, result.Message.Key, update.Kind, update.Post.AuthorId, update.Post.PostId));
                    }
                }

                consumer.Close();
                return updates;
            },
            cancellationToken);

    /// <summary>A processor host configured like the harness's, with the given logger factory; the caller starts it.</summary>
    public IHost BuildProcessor(ILoggerFactory? loggerFactory)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(_settings);
        builder.Services.AddFeedProcessor();
        if (loggerFactory is not null)
        {
            // An instance registration: the container does not dispose what it did not create.
            builder.Services.AddSingleton(loggerFactory);
        }

        return builder.Build();
    }

    public static async Task WaitUntilRunningAsync(IHost processor, CancellationToken cancellationToken)
    {
        var service = processor.Services.GetRequiredService<FeedProcessorService>();
        var stopping = processor.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        while (service.State != KafkaStream.State.RUNNING)
        {
            if (stopping.IsCancellationRequested)
            {
                throw new InvalidOperationException($"the processor host stopped before its stream ran (state {service.State})");
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_processor is not null)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await StopProcessorAsync(timeout.Token);
        }

        _producer.Dispose();
        await _cluster.DisposeAsync();
        WipeState();
    }

    private static (string Topic, Message<string, byte[]> Message) ToRecord(FeedInput input)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        return input switch
        {
            FeedInput.Follow(var follower, var author) => FollowRecord(follower, author, FollowAction.Follow, now),
            FeedInput.Unfollow(var follower, var author) => FollowRecord(follower, author, FollowAction.Unfollow, now),
            FeedInput.Block(var follower, var author) => FollowRecord(follower, author, FollowAction.Block, now),
            FeedInput.Post(var author, var postId) => PostRecord(new PostEvent { PostId = postId, AuthorId = author, Action = PostAction.Created, Body = $"body of {postId}", CreatedAtMs = now, OccurredAtMs = now }),
            FeedInput.Delete(var author, var postId) => PostRecord(new PostEvent { PostId = postId, AuthorId = author, Action = PostAction.Deleted, OccurredAtMs = now }),
            _ => throw new ArgumentOutOfRangeException(nameof(input), input, "unknown feed input"),
        };
    }

    private static (string, Message<string, byte[]>) FollowRecord(string follower, string author, FollowAction action, long now) =>
        (FeedTopics.Follows, new Message<string, byte[]>
        {
            Key = follower,
            Value = new FollowEvent { EventId = Guid.NewGuid().ToString("N"), FollowerId = follower, FolloweeId = author, Action = action, OccurredAtMs = now }.ToByteArray(),
        });

    private static (string, Message<string, byte[]>) PostRecord(PostEvent post) =>
        (FeedTopics.Posts, new Message<string, byte[]> { Key = post.AuthorId, Value = post.ToByteArray() });
}
