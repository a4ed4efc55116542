using System.Diagnostics;
using Microsoft.Extensions.Options;

namespace Pipeline.StreamEdge;

/// <summary>
/// When a subscribe burst is over. Fed the count of streams opened so far once a second: a second with more than
/// <see cref="QuietOpensPerSecond"/> opens is busy, and a burst is the opens from its first busy second until
/// <see cref="QuietTime"/> has passed without one. A burst of at least the configured size is due a compaction;
/// a steady trickle of opens never makes a burst, and an edge that never goes quiet is collecting anyway.
/// </summary>
public sealed class BurstPolicy(int minStreams)
{
    /// <summary>Opens per second that still count as quiet: reconnecting clients, not a storm.</summary>
    public const int QuietOpensPerSecond = 100;

    /// <summary>How long opens must stay quiet before a burst counts as over.</summary>
    public static readonly TimeSpan QuietTime = TimeSpan.FromSeconds(5);

    private long _lastOpened;
    private long _burstStartedAt = -1;
    private TimeSpan _lastBusy;
    private TimeSpan _lastSample;

    /// <summary>Samples the streams opened so far at <paramref name="now"/>; returns the size of a burst that has just ended, else 0.</summary>
    public long Observe(long opened, TimeSpan now)
    {
        var seconds = Math.Max((now - _lastSample).TotalSeconds, 1e-3);
        var busy = opened - _lastOpened > QuietOpensPerSecond * seconds;
        if (busy)
        {
            if (_burstStartedAt < 0)
            {
                _burstStartedAt = _lastOpened;
            }

            _lastBusy = now;
        }

        _lastOpened = opened;
        _lastSample = now;
        if (_burstStartedAt < 0 || busy || now - _lastBusy < QuietTime)
        {
            return 0;
        }

        var size = opened - _burstStartedAt;
        _burstStartedAt = -1;
        return minStreams > 0 && size >= minStreams ? size : 0;
    }
}

/// <summary>
/// Gives back the memory a subscribe burst leaves behind. Streams that open all at once (a resume storm after a
/// restart, clients reconnecting after a deploy) leave two kinds of it: Kestrel's buffer blocks, one for each stream
/// whose request the handlers had not read yet (40–110 MiB with 50,000 streams opened at once), and their transient
/// objects dead in the oldest generation (60–170 MiB of free space in the GC heap). An edge that only holds and feeds
/// its streams allocates too little ever to run the full collection that would return either. Once a burst of
/// <see cref="EdgeOptions.CompactAfterBurstOf"/> opens has settled (<see cref="BurstPolicy"/>), this releases every
/// free block of the edge's <see cref="BlockPools"/> and, when those and the heap's free space come to at least
/// <see cref="MinFreeShare"/> of the heap, runs one blocking, compacting collection that also decommits what it frees
/// (the runtime's aggressive mode): 50,000 subscribers held at 11.2–13.6 KiB each → 8.2–8.6 KiB. Every thread of the
/// edge waits for it, 1.0–1.8 s with 50,000 streams open on the benchmark machine, so it runs only after a burst, and
/// each one is logged with its pause and recorded (<c>feed_edge_burst_compaction_duration_seconds</c>). Between
/// bursts it trims the pools every <see cref="TrimWindow"/> of the blocks that window did not need.
/// </summary>
public sealed class BurstCompactor(EdgeMetrics metrics, BlockPools pools, IOptions<EdgeOptions> options, IHostApplicationLifetime lifetime, ILogger<BurstCompactor> logger) : BackgroundService
{
    /// <summary>How often Kestrel's buffer pools release the blocks no rent needed since the last time.</summary>
    public static readonly TimeSpan TrimWindow = TimeSpan.FromSeconds(30);

    /// <summary>The least share of the heap that must be free space for a compaction to be worth its pause.</summary>
    public const double MinFreeShare = 0.1;

    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);

    /// <summary>Whether a heap with <paramref name="freeBytes"/> of free space in its <paramref name="heapBytes"/> is worth a compaction's pause.</summary>
    public static bool IsWorthCompacting(long freeBytes, long heapBytes) => freeBytes > 0 && freeBytes >= heapBytes * MinFreeShare;

    private readonly BurstPolicy _policy = new(options.Value.CompactAfterBurstOf);
    private TimeSpan _trimmed;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var clock = Stopwatch.StartNew();
        using var timer = new PeriodicTimer(Tick);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            Look(clock.Elapsed);
        }
    }

    /// <summary>
    /// One look, <paramref name="now"/> after the compactor started: settles a burst that has just ended, else trims
    /// the pools once a <see cref="TrimWindow"/>. The background loop looks once a second; tests look with the times
    /// they choose, since a loaded machine can delay the loop's looks by many seconds.
    /// </summary>
    public void Look(TimeSpan now)
    {
        // Not once the edge is stopping: its streams are ending, and a pause would only hold up the exit while
        // their clients back off against a closed port.
        if (_policy.Observe(metrics.SubscriptionsOpened, now) is > 0 and var burst && !lifetime.ApplicationStopping.IsCancellationRequested)
        {
            Settle(burst);
        }
        else if (now - _trimmed >= TrimWindow)
        {
            pools.Trim();
            _trimmed = now;
        }
    }

    private void Settle(long burst)
    {
        // The pools' free blocks become garbage with the heap's free space: both are what a compaction returns.
        var released = pools.Trim(all: true);
        var before = GC.GetGCMemoryInfo();
        if (!IsWorthCompacting(before.FragmentedBytes + released, before.HeapSizeBytes))
        {
            metrics.BurstSettled(compacted: false);
            logger.LogInformation(
                "A burst of {Streams} stream opens settled ({Open} open); released {Released} MiB of free buffer blocks, not compacting: with the heap's free space, {Free} of {Heap} MiB, that is under {Share:P0} of the heap",
                burst,
                metrics.Subscribers,
                MiB(released),
                MiB(before.FragmentedBytes),
                MiB(before.HeapSizeBytes),
                MinFreeShare);
            return;
        }

        var workingSet = Environment.WorkingSet;
        var started = Stopwatch.GetTimestamp();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        var pause = Stopwatch.GetElapsedTime(started);
        metrics.BurstSettled(compacted: true, pause);
        var after = GC.GetGCMemoryInfo();
        logger.LogInformation(
            "Compacted the heap after a burst of {Streams} stream opens ({Open} open): paused {PauseMs:F0} ms; released {Released} MiB of free buffer blocks; heap {HeapBefore} → {HeapAfter} MiB, its free space {FreeBefore} → {FreeAfter} MiB, committed {CommittedBefore} → {CommittedAfter} MiB, working set {WorkingSetBefore} → {WorkingSetAfter} MiB",
            burst,
            metrics.Subscribers,
            pause.TotalMilliseconds,
            MiB(released),
            MiB(before.HeapSizeBytes),
            MiB(after.HeapSizeBytes),
            MiB(before.FragmentedBytes),
            MiB(after.FragmentedBytes),
            MiB(before.TotalCommittedBytes),
            MiB(after.TotalCommittedBytes),
            MiB(workingSet),
            MiB(Environment.WorkingSet));
    }

    private static long MiB(long bytes) => bytes >> 20;
}
