using System.Diagnostics;
using Confluent.Kafka;
using Feed.V1;
using Microsoft.Extensions.Options;
using Pipeline.Kafka;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// Reads every partition of feed.updates (each edge instance sees all updates, so any subscriber can attach to any
/// edge), applies each update to the local feed replica and dispatches it to the recipient's open subscriptions.
/// The partitions are shared among <see cref="EdgeOptions.ApplyThreads"/> apply threads (partition p to thread
/// p mod N), each with a Kafka consumer and a replica writer of its own: librdkafka's Consume blocks, and the
/// dispatch path must never wait on the request threads. A user's updates are all in one partition, so each user's
/// feed is applied and dispatched in order by one thread.
/// </summary>
public sealed partial class FeedUpdatesConsumer : BackgroundService
{
    /// <summary>The most records applied in one replica write.</summary>
    private const int MaxBatch = 128;

    private readonly ClientConfig _clientConfig;
    private readonly EdgeOptions _options;
    private readonly SubscriberRegistry _registry;
    private readonly EdgeMetrics _metrics;
    private readonly EdgeReadiness _readiness;
    private readonly FeedReplica _replica;
    private readonly CursorCodec _cursors;
    private readonly ILogger<FeedUpdatesConsumer> _logger;

    /// <summary>Partitions not yet read to the end they had at start, over all apply threads.</summary>
    private int _catchingUp;

    public FeedUpdatesConsumer(
        IOptions<ClientConfig> clientConfig,
        IOptions<EdgeOptions> options,
        SubscriberRegistry registry,
        EdgeMetrics metrics,
        EdgeReadiness readiness,
        FeedReplica replica,
        CursorCodec cursors,
        ILogger<FeedUpdatesConsumer> logger)
    {
        _replica = replica;
        _cursors = cursors;
        _clientConfig = clientConfig.Value;
        _options = options.Value;
        _registry = registry;
        _metrics = metrics;
        _readiness = readiness;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var assignment = await Task.Factory.StartNew(() => ReadAssignment(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var threads = Math.Min(_options.ApplyThreads, assignment.Count);
        var shares = Enumerable.Range(0, threads).Select(thread => assignment.Where(a => a.Partition.Value % threads == thread).ToList()).ToList();
        _metrics.TrackPartitions(assignment.Max(a => a.Partition.Value) + 1);
        Volatile.Write(ref _catchingUp, assignment.Count);
        LogAssigned(_logger, assignment.Count, FeedTopics.FeedUpdates, threads);
        _readiness.MarkAssigned(assignment.Count);

        // One thread failing stops the others (each closes its consumer) and then the edge: a replica that no longer
        // applies some partitions must not keep serving them.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        await Task.WhenAll(shares.Select(share => Task.Factory.StartNew(
            () => RunThread(share, threads, stop), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)));
    }

    private void RunThread(List<TopicPartitionOffset> share, int threads, CancellationTokenSource stop)
    {
        try
        {
            Consume(share, threads, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch
        {
            stop.Cancel();
            throw;
        }
    }

    private void Consume(List<TopicPartitionOffset> share, int threads, CancellationToken stoppingToken)
    {
        var config = new ConsumerConfig(_clientConfig.Copy())
        {
            GroupId = _options.ConsumerGroupId,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            // Only committed output of the exactly-once processor is delivered; aborted fan-outs never reach users.
            IsolationLevel = IsolationLevel.ReadCommitted,
            // End-of-partition events tell when the replica has caught up with what existed at start.
            EnablePartitionEof = true,
            // Delivery latency: some brokers (the embedded mock among them) answer an empty fetch only when it expires.
            FetchWaitMaxMs = 20,
            ClientId = $"stream-edge-{Environment.MachineName}",

            // Each record's value and timestamp are all the edge reads (the recipient is in the value): no key
            // string, topic string or header list is built per record.
            ConsumeResultFields = "timestamp",

            // The threads' consumers share librdkafka's default prefetch budget (64 MiB) instead of taking it each:
            // a rebuild keeps every consumer's queue full.
            QueuedMaxMessagesKbytes = Math.Max(1024, 65_536 / threads),
        };

        using var consumer = new ConsumerBuilder<Ignore, byte[]>(config)
            .SetKeyDeserializer(Deserializers.Ignore)
            .SetValueDeserializer(Deserializers.ByteArray)
            .SetErrorHandler((_, error) => LogKafkaError(_logger, error.Code, error.Reason, error.IsFatal))
            .Build();
        try
        {
            // The consumer's own metadata must know the partitions' leaders before it is assigned: librdkafka
            // retries the offset lookup of a leaderless partition only after 500 ms, which every start and every
            // resume storm waited for. Asking the leader for one partition's watermarks loads them; if that fails,
            // the assignment still works, only later.
            try
            {
                consumer.QueryWatermarkOffsets(share[0].TopicPartition, TimeSpan.FromSeconds(5));
            }
            catch (KafkaException ex)
            {
                LogLeadersUnknown(_logger, ex.Error.Reason);
            }

            consumer.Assign(share);
            var thread = new ApplyThread(consumer, _replica.CreateWriter(), new PartitionLag(share));
            var catchingUp = share.Select(a => a.Partition.Value).ToHashSet();

            // What librdkafka has already fetched is applied in one replica write: waits for the next record, then
            // takes whatever else is ready without waiting, up to MaxBatch.
            while (!stoppingToken.IsCancellationRequested)
            {
                for (var result = consumer.Consume(stoppingToken); result is not null; result = thread.Batch.Count < MaxBatch ? consumer.Consume(TimeSpan.Zero) : null)
                {
                    if (result.IsPartitionEOF)
                    {
                        // Caught up means applied: what came before the end of the partition is written first.
                        CommitAndDispatch(thread);
                        if (catchingUp.Remove(result.Partition.Value) && Interlocked.Decrement(ref _catchingUp) == 0)
                        {
                            LogCaughtUp(_logger, _readiness.PartitionCount);
                            _readiness.MarkCaughtUp();
                        }

                        continue;
                    }

                    _metrics.Consumed();
                    Stage(thread, result);
                }

                CommitAndDispatch(thread);
            }
        }
        finally
        {
            consumer.Close();
        }
    }

    /// <summary>
    /// Stages one record's update in the thread's replica batch. A second update of a user already in the batch
    /// commits the batch first (staging reads the user's state from the store), so each user's updates still apply
    /// in order.
    /// </summary>
    private void Stage(ApplyThread thread, ConsumeResult<Ignore, byte[]> result)
    {
        var (partition, offset) = (result.Partition.Value, result.Offset.Value);
        if (!FeedEvents.TryParse(result.Message.Value, out var update, out var reason))
        {
            _metrics.Dropped(DropReasons.MalformedUpdate);
            LogMalformed(_logger, partition, offset, reason);
            return;
        }

        if (thread.Writer.IsStaged(update.RecipientId))
        {
            CommitAndDispatch(thread);
        }

        var feedEvent = FeedEvents.ToFeedEvent(update);
        thread.Writer.Stage(partition, offset, update, feedEvent);
        thread.Batch.Add(new Staged(result, update, feedEvent));
    }

    /// <summary>
    /// Writes the staged updates to the replica first, then hands them to live subscribers in consumed order: a
    /// subscriber that registers in between finds an update in both places and skips the copy by offset, so
    /// nothing is lost or doubled.
    /// </summary>
    private void CommitAndDispatch(ApplyThread thread)
    {
        thread.Writer.Commit();
        foreach (var (result, update, feedEvent) in thread.Batch)
        {
            var (partition, offset) = (result.Partition.Value, result.Offset.Value);
            _metrics.Applied(result.Message.Timestamp);
            var dispatched = Stopwatch.GetTimestamp();
            if (_registry.HasSubscribers(update.RecipientId))
            {
                feedEvent.Cursor = _cursors.Encode(FeedCursor.At(partition, offset), update.RecipientId);
                _registry.Dispatch(update.RecipientId, new Delivery<FeedEvent>(feedEvent, partition, offset, dispatched));
            }

            if (_registry.HasSubscribers(partition))
            {
                _registry.Dispatch(partition, new Delivery<PartitionFeedEvent>(FeedEvents.ToPartitionEvent(update, partition, offset, _cursors), partition, offset, dispatched));
            }

            thread.Lag.Applied(partition, offset);
        }

        thread.Lag.Report(thread.Consumer, _metrics);
        thread.Batch.Clear();
    }

    /// <summary>One apply thread's consumer, replica writer, staged records and lag.</summary>
    private sealed class ApplyThread(IConsumer<Ignore, byte[]> consumer, FeedReplica.Writer writer, PartitionLag lag)
    {
        public IConsumer<Ignore, byte[]> Consumer { get; } = consumer;

        public FeedReplica.Writer Writer { get; } = writer;

        public PartitionLag Lag { get; } = lag;

        public List<Staged> Batch { get; } = new(MaxBatch);
    }

    /// <summary>
    /// Each partition's lag after a batch, from the consumer's cached high watermark and the last offset applied:
    /// once per partition the batch touched, not once per record.
    /// </summary>
    private sealed class PartitionLag(List<TopicPartitionOffset> share)
    {
        // Indexed by partition number, for the thread's share of them.
        private readonly TopicPartition?[] _partitions = Indexed(share);
        private readonly long[] _applied = [.. Enumerable.Repeat(-1L, share.Max(a => a.Partition.Value) + 1)];

        public void Applied(int partition, long offset) => _applied[partition] = offset;

        public void Report(IConsumer<Ignore, byte[]> consumer, EdgeMetrics metrics)
        {
            for (var partition = 0; partition < _applied.Length; partition++)
            {
                if (_applied[partition] >= 0)
                {
                    metrics.Lag(partition, consumer.GetWatermarkOffsets(_partitions[partition]!).High.Value - _applied[partition] - 1);
                    _applied[partition] = -1;
                }
            }
        }

        private static TopicPartition?[] Indexed(List<TopicPartitionOffset> share)
        {
            var partitions = new TopicPartition?[share.Max(a => a.Partition.Value) + 1];
            foreach (var assigned in share)
            {
                partitions[assigned.Partition.Value] = assigned.TopicPartition;
            }

            return partitions;
        }
    }

    private readonly record struct Staged(ConsumeResult<Ignore, byte[]> Result, FeedUpdate Update, FeedEvent Event);

    /// <summary>
    /// Every partition of feed.updates at the replica's checkpoint, or at the beginning for a partition it never saw
    /// (a fresh replica rebuilds from what feed.updates retains). Waits, unready, until the topic can be read.
    /// </summary>
    private List<TopicPartitionOffset> ReadAssignment(CancellationToken stoppingToken)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig(_clientConfig.Copy())).Build();
        while (true)
        {
            stoppingToken.ThrowIfCancellationRequested();

            var topic = ReadFeedUpdatesMetadata(admin, out var unreachable);
            if (topic is not null && topic.Error.Code == ErrorCode.NoError && topic.Partitions.Count > 0)
            {
                return topic.Partitions
                    .Select(p => new TopicPartitionOffset(FeedTopics.FeedUpdates, p.PartitionId, _replica.NextOffset(p.PartitionId) is { } next ? new Offset(next) : Offset.Beginning))
                    .ToList();
            }

            // Kafka not reachable yet (an edge started before the brokers, a network blip) is waited out like a
            // missing topic: the edge stays unready and says why, in its log and its health check, instead of stopping.
            var waitingFor = unreachable is not null
                ? $"cannot read Kafka's metadata ({unreachable}); check Kafka:BootstrapServers and that the brokers are reachable"
                : $"topic {FeedTopics.FeedUpdates} does not exist yet ({topic?.Error.Reason ?? "not found"}); create it or start the processor, which provisions it";
            LogWaiting(_logger, waitingFor);
            _readiness.MarkWaiting(waitingFor);
            stoppingToken.WaitHandle.WaitOne(TimeSpan.FromSeconds(2));
        }
    }

    /// <summary>
    /// feed.updates as the cluster's metadata describes it (null when absent), or null with the reason in
    /// <paramref name="unreachable"/> when no broker answered. All-topics metadata: asking for one topic by name can
    /// auto-create it on some brokers.
    /// </summary>
    private static TopicMetadata? ReadFeedUpdatesMetadata(IAdminClient admin, out string? unreachable)
    {
        unreachable = null;
        try
        {
            return admin.GetMetadata(TimeSpan.FromSeconds(10)).Topics.SingleOrDefault(t => t.Topic == FeedTopics.FeedUpdates);
        }
        catch (KafkaException ex) when (!ex.Error.IsFatal)
        {
            unreachable = ex.Error.Reason;
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Feed replica caught up with {PartitionCount} partitions of feed.updates; serving")]
    private static partial void LogCaughtUp(ILogger logger, int partitionCount);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Could not look up the leaders of feed.updates before assigning it ({Reason}); the consumer finds them itself")]
    private static partial void LogLeadersUnknown(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Consuming {PartitionCount} partitions of {Topic} from the replica checkpoints (apply threads: {ApplyThreads})")]
    private static partial void LogAssigned(ILogger logger, int partitionCount, string topic, int applyThreads);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Waiting to read feed.updates, retrying every 2 s: {Reason}")]
    private static partial void LogWaiting(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Skipped malformed feed update at partition {Partition} offset {Offset}: {Reason}")]
    private static partial void LogMalformed(ILogger logger, int partition, long offset, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kafka consumer error {Code}: {Reason} (fatal: {IsFatal})")]
    private static partial void LogKafkaError(ILogger logger, ErrorCode code, string reason, bool isFatal);
}
