using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Pipeline.Kafka;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// Reads every partition of feed.updates (each edge instance sees all updates, so any subscriber can attach to any
/// edge) and dispatches each update to the recipient's open subscriptions. Runs on its own thread: librdkafka's
/// Consume blocks, and the dispatch path must never wait on the request threads.
/// </summary>
public sealed partial class FeedUpdatesConsumer : BackgroundService
{
    private static readonly MessageParser<FeedUpdate> Parser = FeedUpdate.Parser;

    private readonly ClientConfig _clientConfig;
    private readonly EdgeOptions _options;
    private readonly SubscriberRegistry _registry;
    private readonly EdgeMetrics _metrics;
    private readonly EdgeReadiness _readiness;
    private readonly ILogger<FeedUpdatesConsumer> _logger;

    public FeedUpdatesConsumer(
        IOptions<ClientConfig> clientConfig,
        IOptions<EdgeOptions> options,
        SubscriberRegistry registry,
        EdgeMetrics metrics,
        EdgeReadiness readiness,
        ILogger<FeedUpdatesConsumer> logger)
    {
        _clientConfig = clientConfig.Value;
        _options = options.Value;
        _registry = registry;
        _metrics = metrics;
        _readiness = readiness;
        _logger = logger;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(CancellationToken stoppingToken)
    {
        var config = new ConsumerConfig(_clientConfig.Copy())
        {
            GroupId = _options.ConsumerGroupId,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            // Only committed output of the exactly-once processor is delivered; aborted fan-outs never reach users.
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnablePartitionEof = false,
            // Delivery latency: some brokers (the embedded mock among them) answer an empty fetch only when it expires.
            FetchWaitMaxMs = 20,
            ClientId = $"stream-edge-{Environment.MachineName}",
        };

        using var consumer = new ConsumerBuilder<string, byte[]>(config)
            .SetKeyDeserializer(Deserializers.Utf8)
            .SetValueDeserializer(Deserializers.ByteArray)
            .SetErrorHandler((_, error) => LogKafkaError(_logger, error.Code, error.Reason, error.IsFatal))
            .Build();
        try
        {
            var assignment = AssignAtEnd(consumer, stoppingToken);
            LogAssigned(_logger, assignment.Count, FeedTopics.FeedUpdates);
            _readiness.MarkConsumerAssigned();

            while (!stoppingToken.IsCancellationRequested)
            {
                var result = consumer.Consume(stoppingToken);
                if (result?.Message is null)
                {
                    continue;
                }

                _metrics.Consumed();
                Dispatch(result);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            consumer.Close();
        }
    }

    private void Dispatch(ConsumeResult<string, byte[]> result)
    {
        var recipient = result.Message.Key;
        if (recipient is null || !_registry.HasSubscribers(recipient))
        {
            return;
        }

        FeedUpdate update;
        try
        {
            update = Parser.ParseFrom(result.Message.Value);
        }
        catch (InvalidProtocolBufferException ex)
        {
            _metrics.Dropped(DropReasons.MalformedUpdate);
            LogMalformed(_logger, result.Partition.Value, result.Offset.Value, ex.Message);
            return;
        }

        var feedEvent = new FeedEvent { Cursor = new FeedCursor(result.Partition.Value, result.Offset.Value).Encode() };
        if (update.Kind == FeedUpdateKind.Removed)
        {
            feedEvent.Removed = new FeedEntryRemoved { PostId = update.Post?.PostId ?? "", AuthorId = update.Post?.AuthorId ?? "", Cause = update.Cause };
        }
        else
        {
            feedEvent.Added = new FeedEntry { Post = update.Post, Cause = update.Cause, SourceOccurredAtMs = update.SourceOccurredAtMs };
        }

        _registry.Dispatch(recipient, feedEvent);
    }

    /// <summary>
    /// Assigns every partition at its current end. Explicit offsets (rather than Offset.End, which librdkafka
    /// resolves lazily) mean that anything produced after readiness is reported is seen.
    /// </summary>
    private List<TopicPartitionOffset> AssignAtEnd(IConsumer<string, byte[]> consumer, CancellationToken stoppingToken)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig(_clientConfig.Copy())).Build();
        while (true)
        {
            stoppingToken.ThrowIfCancellationRequested();
            var topic = admin.GetMetadata(FeedTopics.FeedUpdates, TimeSpan.FromSeconds(10)).Topics.SingleOrDefault();
            if (topic is not null && topic.Error.Code == ErrorCode.NoError && topic.Partitions.Count > 0)
            {
                var assignment = topic.Partitions
                    .Select(p => new TopicPartition(FeedTopics.FeedUpdates, p.PartitionId))
                    .Select(tp => new TopicPartitionOffset(tp, consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10)).High))
                    .ToList();
                consumer.Assign(assignment);
                return assignment;
            }

            LogWaitingForTopic(_logger, FeedTopics.FeedUpdates, topic?.Error.Reason ?? "not found");
            stoppingToken.WaitHandle.WaitOne(TimeSpan.FromSeconds(2));
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Consuming {PartitionCount} partitions of {Topic} from their current end")]
    private static partial void LogAssigned(ILogger logger, int partitionCount, string topic);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Waiting for topic {Topic} to exist ({Reason}); create it or start the processor, which provisions it")]
    private static partial void LogWaitingForTopic(ILogger logger, string topic, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Skipped malformed feed update at partition {Partition} offset {Offset}: {Reason}")]
    private static partial void LogMalformed(ILogger logger, int partition, long offset, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kafka consumer error {Code}: {Reason} (fatal: {IsFatal})")]
    private static partial void LogKafkaError(ILogger logger, ErrorCode code, string reason, bool isFatal);
}
