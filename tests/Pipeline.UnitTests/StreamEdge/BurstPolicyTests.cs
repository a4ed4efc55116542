using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Pipeline.StreamEdge;

namespace Pipeline.UnitTests.StreamEdge;

public sealed class BurstPolicyTests
{
    /// <summary>Feeds the policy one sample a second: the opens of each second, from second 1 on; returns what each sample answered.</summary>
    private static long[] Run(BurstPolicy policy, params long[] opensPerSecond)
    {
        var opened = 0L;
        var answers = new long[opensPerSecond.Length];
        for (var second = 0; second < opensPerSecond.Length; second++)
        {
            opened += opensPerSecond[second];
            answers[second] = policy.Observe(opened, TimeSpan.FromSeconds(second + 1));
        }

        return answers;
    }

    private static long[] Quiet(int seconds) => new long[seconds];

    [Fact]
    public void Burst_IsDue_OnceItsOpensHaveBeenQuietForTheQuietTime_WithItsSize()
    {
        var quiet = (int)BurstPolicy.QuietTime.TotalSeconds;
        var answers = Run(new BurstPolicy(minStreams: 5_000), [3_000, 20_000, 27_000, .. Quiet(quiet + 3)]);

        // Busy for 3 s, then quiet: due exactly once, QuietTime after the last busy second, with every open of the burst.
        Assert.Equal(50_000, answers[2 + quiet]);
        Assert.Equal(1, answers.Count(answer => answer != 0));
    }

    [Fact]
    public void Burst_SmallerThanTheMinimum_IsNotDue()
    {
        var answers = Run(new BurstPolicy(minStreams: 5_000), [2_000, 2_999, .. Quiet(10)]);
        Assert.All(answers, answer => Assert.Equal(0, answer));
    }

    [Fact]
    public void Trickle_AtTheQuietRate_NeverMakesABurst_HoweverManyItOpens()
    {
        var trickle = Enumerable.Repeat((long)BurstPolicy.QuietOpensPerSecond, 600).ToArray();
        var answers = Run(new BurstPolicy(minStreams: 5_000), [.. trickle, .. Quiet(10)]);
        Assert.All(answers, answer => Assert.Equal(0, answer));
    }

    [Fact]
    public void Burst_ThatPausesForLessThanTheQuietTime_IsOneBurst()
    {
        var quiet = (int)BurstPolicy.QuietTime.TotalSeconds;
        var answers = Run(new BurstPolicy(minStreams: 5_000), [3_000, .. Quiet(quiet - 1), 3_000, .. Quiet(quiet + 1)]);

        Assert.Equal([6_000], answers.Where(answer => answer != 0));
    }

    [Fact]
    public void SecondBurst_IsCounted_FromItsOwnStart()
    {
        var quiet = (int)BurstPolicy.QuietTime.TotalSeconds;
        var answers = Run(new BurstPolicy(minStreams: 5_000), [10_000, .. Quiet(quiet + 2), 7_000, .. Quiet(quiet + 2)]);

        Assert.Equal([10_000, 7_000], answers.Where(answer => answer != 0));
    }

    [Fact]
    public void Samples_FurtherApart_JudgeBusyByRate()
    {
        var policy = new BurstPolicy(minStreams: 1_000);

        // 1,500 opens over 10 s is 150/s: busy. Then 10 s with 500 opens (50/s) is quiet, and the burst is due,
        // counted from its start to the sample that found it over.
        Assert.Equal(0, policy.Observe(1_500, TimeSpan.FromSeconds(10)));
        Assert.Equal(2_000, policy.Observe(2_000, TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public void Zero_TurnsItOff()
    {
        var answers = Run(new BurstPolicy(minStreams: 0), [50_000, .. Quiet(10)]);
        Assert.All(answers, answer => Assert.Equal(0, answer));
    }
}

public sealed class BurstCompactorTests
{
    [Theory]
    [InlineData(100, 1000, true)]
    [InlineData(99, 1000, false)]
    [InlineData(0, 0, false)]
    public void Compaction_IsWorthItsPause_OnlyWithATenthOfTheHeapFree(long free, long heap, bool worth) =>
        Assert.Equal(worth, BurstCompactor.IsWorthCompacting(free, heap));

    /// <summary>
    /// Driven through <see cref="BurstCompactor.Look"/> with the times of a loop that looks once a second: the real
    /// loop's looks are thread-pool work, which the whole test suite beside it on 2 cores once delayed past a 45 s wait.
    /// </summary>
    [Fact]
    public void ABurstOfStreams_IsSettledOnce_AfterItsOpensGoQuiet()
    {
        using var rig = new Rig();
        using var pauses = new MetricCollector<double>(rig.Meters, EdgeMetrics.MeterName, "feed.edge.burst_compaction.duration");
        using var pool = rig.Pools.Create();
        foreach (var block in Enumerable.Range(0, 5).Select(_ => pool.Rent()).ToList())
        {
            block.Dispose();
        }

        rig.Compactor.Look(Second(1));
        Open(rig.Metrics, 600);

        // Busy at second 2; quiet from second 3 on; over once QuietTime has passed since the last busy look.
        var settledAt = 2 + (int)BurstPolicy.QuietTime.TotalSeconds;
        for (var second = 2; second <= settledAt + 5; second++)
        {
            rig.Compactor.Look(Second(second));
            Assert.Equal(second < settledAt ? 0 : 1, rig.Bursts.GetMeasurementSnapshot().Count);
            Assert.True(second >= settledAt || rig.Pools.FreeBytes > 0, "the pools keep their free blocks until the burst has settled");
        }

        // Settled once: the buffer pools' free blocks released, then compacted or not by this test process's own
        // heap; either way logged with the burst's size, and a compaction's pause recorded.
        Assert.Equal(0, rig.Pools.FreeBytes);
        var burst = Assert.Single(rig.Bursts.GetMeasurementSnapshot());
        var outcome = Assert.IsType<string>(burst.Tags["outcome"]);
        Assert.Contains(outcome, (string[])["compacted", "skipped"]);
        Assert.Equal(outcome == "compacted" ? 1 : 0, pauses.GetMeasurementSnapshot().Count);
        Assert.Contains("burst of 600 stream opens", rig.Logger.Collector.LatestRecord.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ABurst_ThatSettlesWhileTheEdgeIsStopping_IsNotCompacted()
    {
        using var rig = new Rig();
        rig.Compactor.Look(Second(1));
        Open(rig.Metrics, 600);
        rig.Compactor.Look(Second(2));

        await rig.Lifetime.StopAsync();

        // Long past the quiet time: the burst would have settled, but the edge is stopping.
        for (var second = 3; second <= 20; second++)
        {
            rig.Compactor.Look(Second(second));
        }

        Assert.Empty(rig.Bursts.GetMeasurementSnapshot());
    }

    /// <summary>The background loop itself: started, it looks once a second and settles a burst on its own.</summary>
    [Fact]
    public async Task Started_ItLooksOnItsOwn()
    {
        using var rig = new Rig();
        await rig.Compactor.StartAsync(CancellationToken.None);

        // 60,000 opens: a burst even if the first look comes 10 minutes late (the rate is judged since the last look).
        Open(rig.Metrics, 60_000);
        var waited = Stopwatch.StartNew();
        while (rig.Bursts.GetMeasurementSnapshot().Count == 0)
        {
            Assert.False(rig.Compactor.ExecuteTask!.IsFaulted, rig.Compactor.ExecuteTask.Exception?.ToString());
            Assert.True(waited.Elapsed < TimeSpan.FromMinutes(3), "the loop settled no burst in 3 minutes");
            await Task.Delay(100);
        }

        await rig.Compactor.StopAsync(CancellationToken.None);
    }

    private static TimeSpan Second(int second) => TimeSpan.FromSeconds(second);

    private static void Open(EdgeMetrics metrics, int streams)
    {
        for (var i = 0; i < streams; i++)
        {
            metrics.SubscriberAdded();
        }
    }

    /// <summary>A compactor for bursts of at least 500 opens, with its metrics, pools, logger and lifetime.</summary>
    private sealed class Rig : IDisposable
    {
        private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();

        public Rig()
        {
            Meters = _services.GetRequiredService<IMeterFactory>();
            Metrics = new EdgeMetrics(Meters);
            Bursts = new MetricCollector<long>(Meters, EdgeMetrics.MeterName, "feed.edge.subscribe_bursts");
            Pools = new BlockPools(Metrics);
            Compactor = new BurstCompactor(Metrics, Pools, Options.Create(new EdgeOptions { CompactAfterBurstOf = 500 }), Lifetime, Logger);
        }

        public IMeterFactory Meters { get; }

        public EdgeMetrics Metrics { get; }

        public MetricCollector<long> Bursts { get; }

        public BlockPools Pools { get; }

        public FakeLogger<BurstCompactor> Logger { get; } = new();

        public Lifetime Lifetime { get; } = new();

        public BurstCompactor Compactor { get; }

        public void Dispose()
        {
            Compactor.Dispose();
            Lifetime.Dispose();
            Bursts.Dispose();
            Metrics.Dispose();
            _services.Dispose();
        }
    }

    private sealed class Lifetime : IHostApplicationLifetime, IDisposable
    {
        private readonly CancellationTokenSource _stopping = new();

        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => _stopping.Token;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication() => _stopping.Cancel();

        public Task StopAsync() => _stopping.CancelAsync();

        public void Dispose() => _stopping.Dispose();
    }
}
