using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Pipeline.StreamEdge;

public static class DropReasons
{
    /// <summary>The subscriber's buffer was full; the event was not queued and the subscription ends.</summary>
    public const string SubscriberOverflow = "subscriber_overflow";

    /// <summary>A feed.updates record could not be parsed.</summary>
    public const string MalformedUpdate = "malformed_update";
}

/// <summary>
/// The edge's instruments (meter "Pipeline.StreamEdge"). Hot-path counts are plain interlocked fields exposed
/// through observable instruments, so the dispatch loop pays one atomic add and the console status and the
/// Prometheus scrape read the same numbers.
/// </summary>
public sealed class EdgeMetrics : IDisposable
{
    public const string MeterName = "Pipeline.StreamEdge";

    /// <summary>
    /// Seconds; fine enough around the latency targets (20 and 100 ms), with 10 ms steps from 20 to 50 ms where a
    /// light load's tail lies (one 20–50 ms bucket put every p99 there near 49 ms), and wide enough for a backlog.
    /// </summary>
    private static readonly double[] UpdateAgeBuckets = [0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60, 300];

    /// <summary>Seconds, from a millisecond (an idle edge) to a backlog.</summary>
    private static readonly double[] WriteDelayBuckets = [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly Meter _meter;
    private readonly Counter<long> _drops;
    private readonly Histogram<double> _updateAge;
    private readonly Histogram<double> _writeDelay;
    private readonly Counter<long> _tokenChecks;
    private readonly Counter<long> _tokenValidations;
    private readonly Counter<long> _bursts;
    private readonly Histogram<double> _burstCompactions;
    private long _subscribers;
    private long _subscriptionsOpened;
    private long _deliveries;
    private long _updatesConsumed;
    private long _subscriptionsRefused;
    private long[] _partitionLag = [];

    public EdgeMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _meter.CreateObservableUpDownCounter("feed.edge.subscribers", () => Subscribers, "{subscriber}", "Open Subscribe streams");
        _meter.CreateObservableCounter("feed.edge.subscriptions_opened", () => SubscriptionsOpened, "{subscription}", "Subscribe streams opened since the edge started (its rate is the arrival rate; a step is a burst)");
        _meter.CreateObservableCounter("feed.edge.deliveries", () => Deliveries, "{event}", "Feed events written to subscriber streams");
        _meter.CreateObservableCounter("feed.edge.updates_consumed", () => UpdatesConsumed, "{record}", "feed.updates records consumed");
        _meter.CreateObservableCounter("feed.edge.subscriptions_refused", () => Volatile.Read(ref _subscriptionsRefused), "{subscription}", "Subscribe calls refused by the per-user limit");
        _meter.CreateObservableGauge("feed.edge.replica_lag", () => ReplicaLag, "{record}", "feed.updates records not yet applied to the replica (all partitions)");
        _drops = _meter.CreateCounter<long>("feed.edge.drops", "{event}", "Events not delivered, by reason");
        _tokenChecks = _meter.CreateCounter<long>("feed.edge.token_cache_lookups", "{call}", "Bearer tokens looked up in the validated-token cache, by result (hit: not validated again)");
        _tokenValidations = _meter.CreateCounter<long>("feed.edge.token_validations", "{token}", "Bearer tokens validated in full (signature, issuer, audience, lifetime), by result (valid or refused)");
        _bursts = _meter.CreateCounter<long>("feed.edge.subscribe_bursts", "{burst}", "Subscribe bursts of at least Edge:CompactAfterBurstOf streams that settled, by outcome (compacted, or skipped: little free space)");
        _burstCompactions = _meter.CreateHistogram(
            "feed.edge.burst_compaction.duration",
            "s",
            "Full compacting collections after a subscribe burst (Edge:CompactAfterBurstOf), each timed: every thread of the edge waits for it",
            tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = WriteDelayBuckets });
        _updateAge = _meter.CreateHistogram(
            "feed.edge.update_age",
            "s",
            "Time from the record that caused a feed update (a post or follow; the processor keeps its Kafka timestamp) to the update's apply at the edge: the pipeline's freshness, before delivery",
            tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = UpdateAgeBuckets });
        _writeDelay = _meter.CreateHistogram(
            "feed.edge.write_delay",
            "s",
            "Time from a live update's dispatch (after its replica write) to its write on a subscriber's stream: the subscriber's queue, the thread pool and HTTP/2 flow control; with feed.edge.update_age it splits post -> subscriber into before and after the edge's apply",
            tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = WriteDelayBuckets });
    }

    public long Subscribers => Volatile.Read(ref _subscribers);

    public long Deliveries => Volatile.Read(ref _deliveries);

    public long SubscriptionsOpened => Volatile.Read(ref _subscriptionsOpened);

    public long UpdatesConsumed => Volatile.Read(ref _updatesConsumed);

    public long ReplicaLag => Volatile.Read(ref _partitionLag).Sum();

    /// <summary>Sizes the lag of each partition for <paramref name="partitions"/> partitions, before the apply threads start.</summary>
    public void TrackPartitions(int partitions)
    {
        if (partitions > Volatile.Read(ref _partitionLag).Length)
        {
            Volatile.Write(ref _partitionLag, new long[partitions]);
        }
    }

    /// <summary>
    /// Records the consumer's distance from the partition's end after applying an update; each partition from one
    /// apply thread, within the partitions tracked.
    /// </summary>
    public void Lag(int partition, long records) => Volatile.Read(ref _partitionLag)[partition] = Math.Max(0, records);

    /// <summary>Publishes the events queued in subscriber buffers (feed.edge.queued_events), read at scrape time.</summary>
    public void ObserveQueuedEvents(Func<long> queued) =>
        _meter.CreateObservableGauge("feed.edge.queued_events", queued, "{event}", "Events waiting in subscriber buffers (bounded by Edge:SubscriberBufferSize per subscription)");

    /// <summary>Publishes the free blocks Kestrel's buffer pools hold (feed.edge.memory_pool.free), read at scrape time.</summary>
    public void ObserveBlockPools(Func<long> freeBytes) =>
        _meter.CreateObservableGauge("feed.edge.memory_pool.free", freeBytes, "By", "Free 4 KiB blocks held by Kestrel's buffer pools: what a burst of connections or streams needed at once, kept for reuse until trimmed");

    /// <summary>
    /// Publishes the replica's RocksDB figures, read at scrape time: its block cache in use, its table files, and
    /// the compaction debt, which grows when writes outrun compaction (with every feed full, an edge's background
    /// compaction takes about a third of its CPU).
    /// </summary>
    public void ObserveReplica(Func<string, long?> property)
    {
        IEnumerable<Measurement<long>> Read(string name) => property(name) is { } value ? [new Measurement<long>(value)] : [];
        _meter.CreateObservableGauge("feed.edge.replica.block_cache", () => Read("rocksdb.block-cache-usage"), "By", "Replica block cache in use (its capacity is Edge:ReplicaBlockCacheMb)");
        _meter.CreateObservableGauge("feed.edge.replica.table_files", () => Read("rocksdb.total-sst-files-size"), "By", "Size of the replica's table files on disk");
        _meter.CreateObservableGauge("feed.edge.replica.pending_compaction", () => Read("rocksdb.estimate-pending-compaction-bytes"), "By", "Bytes RocksDB estimates compaction must rewrite to settle the replica's levels; rising steadily means writes outrun compaction");
    }

    public void SubscriberAdded()
    {
        Interlocked.Increment(ref _subscribers);
        Interlocked.Increment(ref _subscriptionsOpened);
    }

    public void SubscriberRemoved() => Interlocked.Decrement(ref _subscribers);

    public void SubscriptionRefused() => Interlocked.Increment(ref _subscriptionsRefused);

    public void Delivered(int count) => Interlocked.Add(ref _deliveries, count);

    public void Consumed() => Interlocked.Increment(ref _updatesConsumed);

    /// <summary>Records an applied update's age; records without a timestamp are not counted.</summary>
    public void Applied(Confluent.Kafka.Timestamp timestamp)
    {
        if (timestamp.Type != Confluent.Kafka.TimestampType.NotAvailable)
        {
            _updateAge.Record(Math.Max(0, (DateTime.UtcNow - timestamp.UtcDateTime).TotalSeconds));
        }
    }

    /// <summary>Records a live update written to a stream, from its dispatch (a Stopwatch timestamp; 0: not timed).</summary>
    public void Written(long dispatched)
    {
        if (dispatched != 0)
        {
            _writeDelay.Record(Stopwatch.GetElapsedTime(dispatched).TotalSeconds);
        }
    }

    /// <summary>Records a settled subscribe burst, and the pause of the compaction that followed it, if one did.</summary>
    public void BurstSettled(bool compacted, TimeSpan pause = default)
    {
        _bursts.Add(1, new KeyValuePair<string, object?>("outcome", compacted ? "compacted" : "skipped"));
        if (compacted)
        {
            _burstCompactions.Record(pause.TotalSeconds);
        }
    }

    public void Dropped(string reason) => _drops.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void TokenChecked(bool cached) => _tokenChecks.Add(1, new KeyValuePair<string, object?>("result", cached ? "hit" : "miss"));

    public void TokenValidated(bool valid) => _tokenValidations.Add(1, new KeyValuePair<string, object?>("result", valid ? "valid" : "refused"));

    public void Dispose() => _meter.Dispose();
}
