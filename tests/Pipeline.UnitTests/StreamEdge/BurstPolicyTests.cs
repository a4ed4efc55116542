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

    [Fact]
    public async Task ABurstOfStreams_IsSettledOnce_AfterItsOpensGoQuiet()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var metrics = new EdgeMetrics(meters);
        using var bursts = new MetricCollector<long>(meters, EdgeMetrics.MeterName, "feed.edge.subscribe_bursts");
        using var pauses = new MetricCollector<double>(meters, EdgeMetrics.MeterName, "feed.edge.burst_compaction.duration");
        var logger = new FakeLogger<BurstCompactor>();
        using var lifetime = new Lifetime();
        var pools = new BlockPools(metrics);
        using var pool = pools.Create();
        foreach (var block in Enumerable.Range(0, 5).Select(_ => pool.Rent()).ToList())
        {
            block.Dispose();
        }

        using var compactor = new BurstCompactor(metrics, pools, Options.Create(new EdgeOptions { CompactAfterBurstOf = 500 }), lifetime, logger);
        await compactor.StartAsync(CancellationToken.None);

        // 6,000 opens before the compactor's first look: a burst, even if a busy machine delays that look by many
        // seconds (it judges the rate over the time since its last look). The burst is over QuietTime later.
        Open(metrics, 6_000);

        using var timeout = new CancellationTokenSource(BurstPolicy.QuietTime + TimeSpan.FromSeconds(40));
        while (bursts.GetMeasurementSnapshot().Count == 0)
        {
            await Task.Delay(100, timeout.Token);
        }

        await Task.Delay(TimeSpan.FromSeconds(2), timeout.Token);
        await compactor.StopAsync(CancellationToken.None);

        // Settled once: the buffer pools' free blocks released, then compacted or not by this test process's own
        // heap; either way logged with the burst's size, and a compaction's pause recorded.
        Assert.Equal(0, pools.FreeBytes);
        var burst = Assert.Single(bursts.GetMeasurementSnapshot());
        var outcome = Assert.IsType<string>(burst.Tags["outcome"]);
        Assert.Contains(outcome, (string[])["compacted", "skipped"]);
        Assert.Equal(outcome == "compacted" ? 1 : 0, pauses.GetMeasurementSnapshot().Count);
        Assert.Contains("burst of 6000 stream opens", logger.Collector.LatestRecord.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ABurst_ThatSettlesWhileTheEdgeIsStopping_IsNotCompacted()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var metrics = new EdgeMetrics(meters);
        using var bursts = new MetricCollector<long>(meters, EdgeMetrics.MeterName, "feed.edge.subscribe_bursts");
        using var lifetime = new Lifetime();
        using var compactor = new BurstCompactor(metrics, new BlockPools(metrics), Options.Create(new EdgeOptions { CompactAfterBurstOf = 500 }), lifetime, new FakeLogger<BurstCompactor>());
        await compactor.StartAsync(CancellationToken.None);
        Open(metrics, 6_000);

        await Task.Delay(TimeSpan.FromSeconds(1.5));
        await lifetime.StopAsync();

        // Long past the quiet time: the burst would have settled, but the edge is stopping.
        await Task.Delay(BurstPolicy.QuietTime + TimeSpan.FromSeconds(2));
        await compactor.StopAsync(CancellationToken.None);
        Assert.Empty(bursts.GetMeasurementSnapshot());
    }

    private static void Open(EdgeMetrics metrics, int streams)
    {
        for (var i = 0; i < streams; i++)
        {
            metrics.SubscriberAdded();
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
