using Streamiz.Kafka.Net.Processors.Public;

namespace Pipeline.Processor.Topology;

/// <summary>
/// A wall-clock punctuation per task that bumps <see cref="ProcessorMetrics.Heartbeats"/>. Streamiz runs
/// punctuations from the stream thread's loop, between polls and commits, so heartbeats stop exactly when a thread is
/// stuck (a transaction commit that never returns, seen after the broker went down and came back) even if no new
/// input arrives to show it. <see cref="ProgressWatchdog"/> watches them. One per sub-topology is enough: the
/// first transformer of each (the input gates, the recipient stage) starts one.
/// </summary>
internal static class TaskHeartbeat
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Counts the transformer's task as open (once, however often Streamiz initialises it) and schedules its
    /// heartbeat on <paramref name="context"/>.
    /// </summary>
    public static void Start<TKey, TValue>(ProcessorContext<TKey, TValue> context, ProcessorMetrics metrics, ref bool open)
    {
        if (!open)
        {
            open = true;
            metrics.TaskOpened();
        }

        context.Schedule(Interval, PunctuationType.PROCESSING_TIME, _ => metrics.Heartbeat());
    }

    /// <summary>Counts the task as closed, once, however often Streamiz closes the transformer.</summary>
    public static void Stop(ProcessorMetrics metrics, ref bool open)
    {
        if (open)
        {
            open = false;
            metrics.TaskClosed();
        }
    }
}
