using Confluent.Kafka;
using Microsoft.Extensions.Options;
using Pipeline.Kafka;
using Streamiz.Kafka.Net;

namespace Pipeline.Processor;

/// <summary>
/// Liveness: Streamiz can stay RUNNING while processing nothing (seen after the broker went away and came back:
/// its stream thread blocks in a transaction commit that never returns). Every few seconds the watchdog compares
/// the input topics' end offsets with the processor's progress counters and checks the tasks' heartbeats
/// (<see cref="Topology.TaskHeartbeat"/>); when input keeps arriving but nothing has been processed, or tasks are
/// open but their thread has run no punctuation, for <see cref="ProcessorOptions.StallTimeout"/>, it stops the
/// process with exit code 1 so that the supervisor restarts it — from committed state, as after any crash.
/// </summary>
public sealed partial class ProgressWatchdog : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    private readonly FeedProcessorService _processor;
    private readonly ProcessorMetrics _metrics;
    private readonly ClientConfig _clientConfig;
    private readonly TimeSpan _stallTimeout;
    private readonly ILogger<ProgressWatchdog> _logger;
    private readonly TimeProvider _clock;

    public ProgressWatchdog(FeedProcessorService processor, ProcessorMetrics metrics, IOptions<ClientConfig> clientConfig, IOptions<ProcessorOptions> options, ILogger<ProgressWatchdog> logger, TimeProvider? clock = null)
    {
        _processor = processor;
        _metrics = metrics;
        _clientConfig = clientConfig.Value;
        _stallTimeout = options.Value.StallTimeout;
        _logger = logger;
        _clock = clock ?? TimeProvider.System;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _stallTimeout <= TimeSpan.Zero ? Task.CompletedTask : Task.Factory.StartNew(() => Watch(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Watch(CancellationToken stoppingToken)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig(_clientConfig.Copy()) { GroupId = "feed-processor-watchdog" })
            .SetLogHandler((_, _) => { })
            .Build();
        using var admin = new AdminClientBuilder(new AdminClientConfig(_clientConfig.Copy())).SetLogHandler((_, _) => { }).Build();
        var progress = new StallDetector(_stallTimeout);
        while (!stoppingToken.WaitHandle.WaitOne(Interval))
        {
            if (_processor.State != KafkaStream.State.RUNNING)
            {
                progress.Reset();
                continue;
            }

            long inputEnd;
            try
            {
                inputEnd = InputEndOffsets(admin, consumer);
            }
            catch (KafkaException ex)
            {
                // The broker is unreachable: nothing to judge the processor against right now.
                LogNoInputOffsets(_logger, ex.Error.Reason);
                continue;
            }

            LogCheck(_logger, Processed(), inputEnd, _metrics.Heartbeats, _metrics.OpenTasks);

            switch (progress.Check(_clock.GetUtcNow(), Processed(), inputEnd, _metrics.Heartbeats, _metrics.OpenTasks))
            {
                case Stall.NoProgress:
                    LogStalled(_logger, _stallTimeout.TotalSeconds);
                    _processor.Abandon();
                    return;
                case Stall.NoHeartbeat:
                    LogStuck(_logger, _metrics.OpenTasks, _stallTimeout.TotalSeconds);
                    _processor.Abandon();
                    return;
            }
        }
    }

    private long Processed() => _metrics.PostsIn + _metrics.FollowsIn + _metrics.DeadLetters + _metrics.RedeliveriesSkipped + _metrics.FeedUpdatesOut;

    private static long InputEndOffsets(IAdminClient admin, IConsumer<Ignore, Ignore> consumer) =>
        TopicOffsets.EndOffsetSum(admin, consumer, [FeedTopics.Posts, FeedTopics.Follows], TimeSpan.FromSeconds(5));

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stall watchdog: could not read the input topics' end offsets ({Reason}); skipping this check")]
    private static partial void LogNoInputOffsets(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Stall watchdog: {Processed} records processed, input end offsets sum to {InputEnd}, {Heartbeats} heartbeats from {OpenTasks} tasks")]
    private static partial void LogCheck(ILogger logger, long processed, long inputEnd, long heartbeats, int openTasks);

    [LoggerMessage(Level = LogLevel.Critical, Message = "The processor is RUNNING but has processed nothing for {Seconds} s while new input arrived; stopping with exit code 1 so that it restarts from committed state (Processor:StallTimeout)")]
    private static partial void LogStalled(ILogger logger, double seconds);

    [LoggerMessage(Level = LogLevel.Critical, Message = "The processor is RUNNING with {OpenTasks} tasks but its stream thread has not completed a loop for {Seconds} s (stuck in a commit, a poll or a store); stopping with exit code 1 so that it restarts from committed state (Processor:StallTimeout)")]
    private static partial void LogStuck(ILogger logger, int openTasks, double seconds);
}

/// <summary>What the watchdog concluded from one check.</summary>
public enum Stall
{
    None,

    /// <summary>Input grew but nothing was processed for the timeout.</summary>
    NoProgress,

    /// <summary>Tasks are open but their stream thread ran no punctuation for the timeout: it is stuck inside one step.</summary>
    NoHeartbeat,
}

/// <summary>
/// The watchdog's rules, apart from Kafka. Stalled when input grew but the processed count has not moved for the
/// timeout, or when tasks are open and the heartbeat count has not moved for the timeout (a thread stuck in a
/// commit after the last input was processed shows only this way).
/// </summary>
public sealed class StallDetector(TimeSpan timeout)
{
    private long _processed = -1;
    private long _inputAtProgress;
    private DateTimeOffset _progressAt;
    private long _heartbeats = -1;
    private DateTimeOffset _heartbeatAt;

    public void Reset() => (_processed, _heartbeats) = (-1, -1);

    public Stall Check(DateTimeOffset now, long processed, long inputEnd, long heartbeats, int openTasks)
    {
        if (heartbeats != _heartbeats || openTasks == 0)
        {
            (_heartbeats, _heartbeatAt) = (heartbeats, now);
        }
        else if (now - _heartbeatAt > timeout)
        {
            return Stall.NoHeartbeat;
        }

        if (processed != _processed)
        {
            (_processed, _inputAtProgress, _progressAt) = (processed, inputEnd, now);
            return Stall.None;
        }

        return inputEnd > _inputAtProgress && now - _progressAt > timeout ? Stall.NoProgress : Stall.None;
    }
}
