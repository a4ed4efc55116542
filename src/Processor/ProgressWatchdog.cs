using Confluent.Kafka;
using Microsoft.Extensions.Options;
using Pipeline.Kafka;
using Streamiz.Kafka.Net;

namespace Pipeline.Processor;

/// <summary>
/// Liveness: Streamiz can stay RUNNING while processing nothing (seen after the broker went away and came back:
/// its stream thread blocks in a transaction commit that never returns, or the instance ends up holding no
/// partitions and never rejoins). Every few seconds the watchdog reads the input topics' offsets and the group's
/// committed offsets, and compares them with the processor's progress counters and its tasks' heartbeats
/// (<see cref="Topology.TaskHeartbeat"/>). It stops the process with exit code 1, for the supervisor to restart it
/// from committed state as after any crash, when for <see cref="ProcessorOptions.StallTimeout"/>:
/// <list type="bullet">
/// <item>input arrived on the partitions this instance's tasks read, and it processed nothing;</item>
/// <item>tasks are open, and their thread ran no punctuation;</item>
/// <item>it holds no tasks, input records wait past the group's committed offsets, and no instance of the group
/// wrote anything (a spare instance in a working group, or an idle one, is left alone).</item>
/// </list>
/// On librdkafka's mock cluster, offsets committed inside transactions are not visible to offset fetches, so there
/// every input record counts as waiting and the last rule rests on the group's output alone: a spare instance of an
/// idle exactly-once group restarts once per timeout. A Kafka broker shows the commits.
/// </summary>
public sealed partial class ProgressWatchdog : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan KafkaTimeout = TimeSpan.FromSeconds(5);

    private readonly FeedProcessorService _processor;
    private readonly ProcessorMetrics _metrics;
    private readonly ClientConfig _clientConfig;
    private readonly string _group;
    private readonly IReadOnlyList<string> _consumed;
    private readonly IReadOnlyList<string> _written;
    private readonly TimeSpan _stallTimeout;
    private readonly ILogger<ProgressWatchdog> _logger;
    private readonly TimeProvider _clock;

    public ProgressWatchdog(FeedProcessorService processor, ProcessorMetrics metrics, FeedTopicPlan topics, IOptions<ClientConfig> clientConfig, IOptions<ProcessorOptions> options, ILogger<ProgressWatchdog> logger, TimeProvider? clock = null)
    {
        _processor = processor;
        _metrics = metrics;
        _clientConfig = clientConfig.Value;
        _group = options.Value.ApplicationId;
        _consumed = topics.Consumed();
        _written = topics.Written();
        _stallTimeout = options.Value.StallTimeout;
        _logger = logger;
        _clock = clock ?? TimeProvider.System;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _stallTimeout <= TimeSpan.Zero ? Task.CompletedTask : Task.Factory.StartNew(() => Watch(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Watch(CancellationToken stoppingToken)
    {
        // Reads offsets, and (read_committed, never committing) whether a record waits past a committed offset.
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig(_clientConfig.Copy())
            {
                GroupId = "feed-processor-watchdog",
                EnableAutoCommit = false,
                IsolationLevel = IsolationLevel.ReadCommitted,
            })
            .SetLogHandler((_, _) => { })
            .Build();
        using var admin = new AdminClientBuilder(new AdminClientConfig(_clientConfig.Copy())).SetLogHandler((_, _) => { }).Build();
        var detector = new StallDetector(_stallTimeout);
        while (!stoppingToken.WaitHandle.WaitOne(Interval))
        {
            if (_processor.State != KafkaStream.State.RUNNING)
            {
                detector.Reset();
                continue;
            }

            ProgressSample sample;
            GroupPositions positions;
            try
            {
                (sample, positions) = Sample(admin);
            }
            catch (KafkaException ex)
            {
                // The broker is unreachable: nothing to judge the processor against right now.
                LogNoInputOffsets(_logger, ex.Error.Reason);
                continue;
            }

            _metrics.GroupLagRead(sample.GroupLag);
            LogCheck(_logger, sample.Processed, sample.OwnedInputEnd, sample.Heartbeats, sample.OpenTasks, sample.GroupLag, positions.CommitsRead ? "" : " (committed offsets unreadable: counted from the partitions' start)");

            switch (detector.Check(_clock.GetUtcNow(), sample))
            {
                case Stall.NoProgress:
                    LogStalled(_logger, _stallTimeout.TotalSeconds);
                    _processor.Abandon();
                    return;
                case Stall.NoHeartbeat:
                    LogStuck(_logger, sample.OpenTasks, _stallTimeout.TotalSeconds);
                    _processor.Abandon();
                    return;
                case Stall.NoAssignment when RecordWaits(consumer, positions):
                    LogUnassigned(_logger, sample.GroupLag, _group, _stallTimeout.TotalSeconds);
                    _processor.Abandon();
                    return;
                case Stall.NoAssignment:
                    // What lies past the committed offsets is only transaction markers: the group is idle, not stuck.
                    LogOnlyMarkersWait(_logger, sample.GroupLag);
                    detector.DismissGroupStall();
                    break;
            }
        }
    }

    /// <summary>One reading of the counters and of where the group stands on the topics it consumes.</summary>
    private (ProgressSample Sample, GroupPositions Positions) Sample(IAdminClient admin)
    {
        var (owned, ownedVersion) = _metrics.OwnedInputs();
        var processed = _metrics.PostsIn + _metrics.FollowsIn + _metrics.DeadLetters + _metrics.RedeliveriesSkipped + _metrics.FeedUpdatesOut;
        var heartbeats = _metrics.Heartbeats;
        var openTasks = _metrics.OpenTasks;
        var positions = TopicOffsets.ReadGroupPositions(admin, _group, _consumed, KafkaTimeout);
        var written = TopicOffsets.EndOffsetSum(admin, _written, KafkaTimeout);
        var sample = new ProgressSample(
            processed,
            heartbeats,
            openTasks,
            positions.Partitions.Where(position => owned.Contains(position.Partition)).Sum(position => position.End),
            ownedVersion,
            written,
            positions.Lag);
        return (sample, positions);
    }

    /// <summary>Whether a record, not only transaction markers, waits past the group's commits; read only when a group stall is suspected.</summary>
    private bool RecordWaits(IConsumer<Ignore, Ignore> consumer, GroupPositions positions)
    {
        try
        {
            return TopicOffsets.RecordWaits(consumer, positions.Partitions, KafkaTimeout);
        }
        catch (KafkaException ex)
        {
            LogNoInputOffsets(_logger, ex.Error.Reason);
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stall watchdog: could not read the input topics' offsets ({Reason}); skipping this check")]
    private static partial void LogNoInputOffsets(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Stall watchdog: {Processed} records processed, this instance's input partitions end at {OwnedInputEnd} in sum, {Heartbeats} heartbeats from {OpenTasks} tasks, group lag {GroupLag}{CommitsNote}")]
    private static partial void LogCheck(ILogger logger, long processed, long ownedInputEnd, long heartbeats, int openTasks, long groupLag, string commitsNote);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Stall watchdog: the group has written nothing for a while with {GroupLag} offsets past its commits, but no record waits there (transaction markers only): idle, not stalled")]
    private static partial void LogOnlyMarkersWait(ILogger logger, long groupLag);

    [LoggerMessage(Level = LogLevel.Critical, Message = "The processor is RUNNING but has processed nothing for {Seconds} s while new input arrived on its partitions; stopping with exit code 1 so that it restarts from committed state (Processor:StallTimeout)")]
    private static partial void LogStalled(ILogger logger, double seconds);

    [LoggerMessage(Level = LogLevel.Critical, Message = "The processor is RUNNING with {OpenTasks} tasks but its stream thread has not completed a loop for {Seconds} s (stuck in a commit, a poll or a store); stopping with exit code 1 so that it restarts from committed state (Processor:StallTimeout)")]
    private static partial void LogStuck(ILogger logger, int openTasks, double seconds);

    [LoggerMessage(Level = LogLevel.Critical, Message = "The processor is RUNNING with no tasks while {GroupLag} input offsets wait past the committed offsets of group {Group} and no instance has written anything for {Seconds} s (a rebalance left the input unassigned); stopping with exit code 1 so that it rejoins the group from committed state (Processor:StallTimeout)")]
    private static partial void LogUnassigned(ILogger logger, long groupLag, string group, double seconds);
}

/// <summary>What the watchdog concluded from one check.</summary>
public enum Stall
{
    None,

    /// <summary>Input grew on this instance's partitions but nothing was processed for the timeout.</summary>
    NoProgress,

    /// <summary>Tasks are open but their stream thread ran no punctuation for the timeout: it is stuck inside one step.</summary>
    NoHeartbeat,

    /// <summary>
    /// No tasks here, input offsets past the group's commits, and the group's output has not grown for the timeout.
    /// Transaction markers alone also look like this; the watchdog confirms that a record waits before it acts.
    /// </summary>
    NoAssignment,
}

/// <summary>One watchdog reading.</summary>
/// <param name="Processed">Records this instance processed (in, out, dead-lettered, skipped), ever.</param>
/// <param name="Heartbeats">Task heartbeats, ever.</param>
/// <param name="OpenTasks">Tasks open now.</param>
/// <param name="OwnedInputEnd">End offsets of the input partitions this instance's tasks read, summed.</param>
/// <param name="OwnedInputsVersion">Changes whenever that set of partitions does.</param>
/// <param name="GroupOutputEnd">End offsets of the topics the group writes (<see cref="FeedTopicPlan.Written"/>), summed.</param>
/// <param name="GroupLag">Input offsets past the group's committed offsets (records, and transaction markers).</param>
public readonly record struct ProgressSample(long Processed, long Heartbeats, int OpenTasks, long OwnedInputEnd, int OwnedInputsVersion, long GroupOutputEnd, long GroupLag);

/// <summary>
/// The watchdog's rules, apart from Kafka. Each clock starts at the first reading that shows the condition, so a
/// long idle period followed by new input is not mistaken for a stall.
/// <list type="bullet">
/// <item><see cref="Stall.NoProgress"/>: tasks open, this instance's input grew since its last progress, and the
/// processed count has not moved since (a rebalance that changes its partitions starts over);</item>
/// <item><see cref="Stall.NoHeartbeat"/>: tasks open and the heartbeat count has not moved (a thread stuck in a
/// commit after the last input was processed shows only this way);</item>
/// <item><see cref="Stall.NoAssignment"/>: no tasks, the group lags and its output has not grown.</item>
/// </list>
/// </summary>
public sealed class StallDetector(TimeSpan timeout)
{
    private long _heartbeats = -1;
    private DateTimeOffset _heartbeatAt;
    private long _processed = -1;
    private int _ownedInputsVersion = -1;
    private long _ownedEndAtProgress;
    private DateTimeOffset? _inputWaitingSince;
    private long _groupOutputEnd = -1;
    private DateTimeOffset? _groupStuckSince;

    public void Reset() => (_heartbeats, _processed, _inputWaitingSince, _groupOutputEnd, _groupStuckSince) = (-1, -1, null, -1, null);

    /// <summary>A suspected <see cref="Stall.NoAssignment"/> turned out to be idle: start its clock over.</summary>
    public void DismissGroupStall() => _groupStuckSince = null;

    public Stall Check(DateTimeOffset now, ProgressSample sample)
    {
        if (sample.Heartbeats != _heartbeats || sample.OpenTasks == 0)
        {
            (_heartbeats, _heartbeatAt) = (sample.Heartbeats, now);
        }
        else if (now - _heartbeatAt > timeout)
        {
            return Stall.NoHeartbeat;
        }

        if (sample.OpenTasks == 0 || sample.Processed != _processed || sample.OwnedInputsVersion != _ownedInputsVersion)
        {
            (_processed, _ownedInputsVersion, _ownedEndAtProgress, _inputWaitingSince) = (sample.Processed, sample.OwnedInputsVersion, sample.OwnedInputEnd, null);
        }
        else if (sample.OwnedInputEnd > _ownedEndAtProgress && now - (_inputWaitingSince ??= now) > timeout)
        {
            return Stall.NoProgress;
        }

        if (sample.OpenTasks > 0 || sample.GroupLag == 0 || sample.GroupOutputEnd != _groupOutputEnd)
        {
            // Output not seen to grow from here on: the clock starts with this reading if input waits.
            (_groupOutputEnd, _groupStuckSince) = (sample.GroupOutputEnd, sample.OpenTasks == 0 && sample.GroupLag > 0 ? now : null);
        }
        else if (now - (_groupStuckSince ??= now) > timeout)
        {
            return Stall.NoAssignment;
        }

        return Stall.None;
    }
}
