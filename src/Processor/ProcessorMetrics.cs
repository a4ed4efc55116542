using System.Diagnostics.Metrics;
using Confluent.Kafka;

namespace Pipeline.Processor;

/// <summary>
/// The processor's instruments (meter "Pipeline.Processor"). The topology bumps plain interlocked fields on the
/// stream thread; observable instruments publish them, so the hot path costs one atomic add per record.
/// </summary>
public sealed class ProcessorMetrics : IDisposable
{
    public const string MeterName = "Pipeline.Processor";

    private readonly Meter _meter;
    private long _postsIn;
    private long _followsIn;
    private long _feedUpdatesOut;
    private long _deadLetters;
    private long _redeliveriesSkipped;
    private long _largestFanOutTicks;
    private long _heartbeats;
    private long _lastHeartbeatMs = Environment.TickCount64;
    private int _openTasks;
    private long _purgesRefused;
    private readonly Dictionary<TopicPartition, int> _ownedInputs = [];
    private int _ownedInputsVersion;
    private long _groupLag = -1;
    private readonly Histogram<double> _fanOutDuration;
    private readonly Histogram<double> _commitDuration;
    private readonly Histogram<double> _transactionSpan;

    public ProcessorMetrics(IMeterFactory? meterFactory = null)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        _meter.CreateObservableCounter("feed.processor.posts_in", () => PostsIn, "{record}", "social.posts records processed");
        _meter.CreateObservableCounter("feed.processor.follows_in", () => FollowsIn, "{record}", "social.follows records processed");
        _meter.CreateObservableCounter("feed.processor.feed_updates_out", () => FeedUpdatesOut, "{record}", "feed.updates records emitted");
        _meter.CreateObservableCounter("feed.processor.dead_letters", () => DeadLetters, "{record}", "Input records sent to pipeline.dead-letters");
        _meter.CreateObservableCounter("feed.processor.redeliveries_skipped", () => RedeliveriesSkipped, "{record}", "Input records skipped because the task had applied them already (committed offsets lost or behind)");
        _meter.CreateObservableGauge("feed.processor.fanout.longest", () => LongestFanOut.TotalSeconds, "s", "Longest single fan-out on the stream thread since start (a large author's post)");
        _meter.CreateObservableGauge("feed.processor.stream_thread.heartbeat_age", () => HeartbeatAge.TotalSeconds, "s", "Time since a stream thread last ran its loop's wall-clock punctuation; grows without bound when a thread is stuck (e.g. in a transaction commit)");
        _meter.CreateObservableGauge("feed.processor.tasks.open", () => OpenTasks, "{task}", "Stream tasks open on this instance; 0 on a RUNNING instance means it holds no partitions (more instances than partitions, or a rebalance that left it out)");
        _meter.CreateObservableGauge(
            "feed.processor.group.lag",
            () => Volatile.Read(ref _groupLag) is >= 0 and var lag ? [new Measurement<long>(lag)] : Array.Empty<Measurement<long>>(),
            "{offset}",
            "Offsets past the processor group's committed offsets on everything it consumes (posts, follows, its repartition topics), read every 5 s by the stall watchdog while RUNNING; transaction markers count one each. Where committed offsets cannot be read (the embedded broker hides transactional commits) every retained record counts");
        _meter.CreateObservableCounter("feed.processor.repartition_purges_refused", () => PurgesRefused, "{request}", "DeleteRecords requests for consumed repartition records that the broker refused; the repartition topics then keep records until retention");
        _fanOutDuration = _meter.CreateHistogram<double>("feed.processor.fanout.duration", "s", "Time one post's fan-out held the stream thread");
        _commitDuration = _meter.CreateHistogram(
            "feed.processor.transaction.commit.duration",
            "s",
            "Time a stream thread spent in one exactly-once commit (producer flushed, offsets sent to the transaction, transaction committed), blocked; output is visible downstream only after it",
            tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        _transactionSpan = _meter.CreateHistogram(
            "feed.processor.transaction.span",
            "s",
            "Per exactly-once transaction, from its first record sent to its commit: the longest any of its records waited to become visible to read_committed consumers (on a real broker; the embedded broker shows records before their commit)",
            tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.02, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
    }

    public long PostsIn => Volatile.Read(ref _postsIn);

    public long FollowsIn => Volatile.Read(ref _followsIn);

    public long FeedUpdatesOut => Volatile.Read(ref _feedUpdatesOut);

    public long DeadLetters => Volatile.Read(ref _deadLetters);

    public long RedeliveriesSkipped => Volatile.Read(ref _redeliveriesSkipped);

    /// <summary>Wall-clock punctuations run so far, over all tasks: moves every second while the stream threads loop.</summary>
    public long Heartbeats => Volatile.Read(ref _heartbeats);

    /// <summary>Tasks whose heartbeat is scheduled (opened and not yet closed).</summary>
    public int OpenTasks => Volatile.Read(ref _openTasks);

    public TimeSpan HeartbeatAge => OpenTasks == 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastHeartbeatMs));

    public long PurgesRefused => Interlocked.Read(ref _purgesRefused);

    public TimeSpan LongestFanOut => TimeSpan.FromTicks(Volatile.Read(ref _largestFanOutTicks));

    public void TransactionCommitted(TimeSpan elapsed) => _commitDuration.Record(elapsed.TotalSeconds);

    public void TransactionSpanned(TimeSpan firstRecordToCommit) => _transactionSpan.Record(firstRecordToCommit.TotalSeconds);

    public void FanOutCompleted(TimeSpan elapsed)
    {
        _fanOutDuration.Record(elapsed.TotalSeconds);
        var ticks = elapsed.Ticks;
        var longest = Volatile.Read(ref _largestFanOutTicks);
        while (ticks > longest)
        {
            var seen = Interlocked.CompareExchange(ref _largestFanOutTicks, ticks, longest);
            if (seen == longest)
            {
                break;
            }

            longest = seen;
        }
    }

    public void PostProcessed() => Interlocked.Increment(ref _postsIn);

    public void FollowProcessed() => Interlocked.Increment(ref _followsIn);

    public void FeedUpdatesEmitted(int count) => Interlocked.Add(ref _feedUpdatesOut, count);

    public void DeadLettered() => Interlocked.Increment(ref _deadLetters);

    public void RedeliverySkipped() => Interlocked.Increment(ref _redeliveriesSkipped);

    /// <summary>Counts a refused repartition purge; returns how many so far.</summary>
    public long PurgeRefused() => Interlocked.Increment(ref _purgesRefused);

    public void TaskOpened()
    {
        Volatile.Write(ref _lastHeartbeatMs, Environment.TickCount64);
        Interlocked.Increment(ref _openTasks);
    }

    public void TaskClosed() => Interlocked.Decrement(ref _openTasks);

    /// <summary>The group's lag as the stall watchdog last read it.</summary>
    public void GroupLagRead(long lag) => Volatile.Write(ref _groupLag, lag);

    /// <summary>An input gate's task opened on this instance: it now reads <paramref name="input"/>.</summary>
    public void InputOpened(TopicPartition input)
    {
        lock (_ownedInputs)
        {
            _ownedInputs[input] = _ownedInputs.GetValueOrDefault(input) + 1;
            _ownedInputsVersion++;
        }
    }

    public void InputClosed(TopicPartition input)
    {
        lock (_ownedInputs)
        {
            if (_ownedInputs.TryGetValue(input, out var count) && count > 1)
            {
                _ownedInputs[input] = count - 1;
            }
            else
            {
                _ownedInputs.Remove(input);
            }

            _ownedInputsVersion++;
        }
    }

    /// <summary>
    /// The input partitions (social.posts, social.follows) this instance's tasks read, and a version that changes
    /// whenever the set does (a rebalance), for the stall watchdog.
    /// </summary>
    public (TopicPartition[] Partitions, int Version) OwnedInputs()
    {
        lock (_ownedInputs)
        {
            return ([.. _ownedInputs.Keys], _ownedInputsVersion);
        }
    }

    public void Heartbeat()
    {
        Volatile.Write(ref _lastHeartbeatMs, Environment.TickCount64);
        Interlocked.Increment(ref _heartbeats);
    }

    public void Dispose() => _meter.Dispose();
}
