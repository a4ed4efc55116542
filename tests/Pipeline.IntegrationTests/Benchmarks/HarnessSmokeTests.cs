using Confluent.Kafka;
using Pipeline.Benchmarks;
using Pipeline.Kafka;

namespace Pipeline.IntegrationTests.Benchmarks;

/// <summary>
/// Keeps the load harness working: its latency scenario at a tiny load, with the broker, processor and edge as
/// separate processes. Only counts are asserted; timings belong in BENCHMARKS.md, not in tests.
/// </summary>
public sealed class HarnessSmokeTests
{
    [Fact]
    public async Task LatencyScenario_TinyLoad_DeliversEveryUpdateOnce()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));

        var result = await Scenarios.LatencyAsync(subscribers: 40, fanOut: 4, postsPerSecond: 20, TimeSpan.FromSeconds(2), perConnection: 20, partitions: 3, timeout.Token);

        Assert.True(result.Posts >= 20, $"only {result.Posts} posts were sent");
        Assert.Equal(result.Posts * 4, result.Expected);
        Assert.Equal(result.Expected, result.Deliveries);
        Assert.Equal(0, result.Gaps);
        Assert.Equal(0, result.Duplicates);
        Assert.True(result.P99Ms > 0 && result.ProcessorCores > 0, "the harness measured latency and CPU");
        Assert.False(double.IsNaN(result.EdgeApplyP50Ms), "the harness read the edge's update-age histogram for the run");
    }

    [Fact]
    public async Task SubscribersScenario_PacedArrivals_ReadsWhatTheEdgeMemoryIsMadeOf()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));

        var result = await Scenarios.SubscriberScaleAsync(subscribers: 40, perConnection: 20, timeout.Token, opensPerSecond: 100, held: TimeSpan.FromSeconds(1));

        Assert.Equal(40, result.Subscribers);
        Assert.Equal(100, result.OpensPerSecond);
        Assert.True(result.EdgeMiB > 0 && result.EdgeBaselineMiB > 0, "the harness read the edge's private bytes");

        // Read from labelled series (one per GC generation): a parsing slip would read 0.
        Assert.True(result.EdgeGcHeapMiB > 0, "the harness summed the edge's GC heap over its generations");
        Assert.True(result.EdgeGcCommittedMiB >= result.EdgeGcHeapMiB - result.EdgeGcFragmentationMiB, "committed memory holds at least the live heap");

        // Read again after holding the subscribers: a second reading, not a copy of the first's NaN placeholders.
        Assert.Equal(1, result.HeldSeconds);
        Assert.True(result.EdgeHeldMiB > 0 && result.EdgeGcCommittedHeldMiB > 0 && result.EdgePooledHeldMiB >= 0, "the harness read the edge again after holding its subscribers");
        Assert.Equal((result.EdgeHeldMiB - result.EdgeBaselineMiB) * 1024 * 1024 / 40, result.BytesPerSubscriberHeld, 0.05 * result.BytesPerSubscriberHeld + 1024 * 1024 / 40.0);
    }

    /// <summary>
    /// An edge that refuses some subscribers (here its subscription limit) must fail the run with the reason, not keep
    /// the harness retrying forever: the harness bounds its traffic in time.
    /// </summary>
    [Fact]
    public async Task Fleet_SomeSubscribersRefused_GivesUpWithTheEdgesReason()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var layout = PipelineLayout.Create(3);
        await using var broker = await PipelineProcesses.StartBrokerAsync(layout, timeout.Token);
        await using var edge = await PipelineProcesses.StartEdgeAsync(layout, timeout.Token, new Dictionary<string, string> { ["Edge__MaxSubscriptions"] = "3" });
        await using var fleet = new SubscriberFleet();

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => fleet.OpenAsync(
            $"http://127.0.0.1:{layout.GrpcPort}", [.. Enumerable.Range(0, 5).Select(FeedWorkload.User)], perConnection: 5, timeout.Token, stallTimeout: TimeSpan.FromSeconds(2)));

        Assert.Equal(3, fleet.Live);
        Assert.Contains("3 of 5 subscribers live", refused.Message, StringComparison.Ordinal);
        Assert.Contains("ResourceExhausted", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Prefill_FillsEveryFeedUncounted_AndFailsWhenTheBrokerDropsPartOfIt()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var layout = PipelineLayout.Create(partitions: 1);
        await using var broker = await PipelineProcesses.StartBrokerAsync(layout, timeout.Token);
        using var workload = new FeedWorkload(layout.BootstrapServers, subscribers: 20, fanOut: 4);
        using var updates = new DirectFeedUpdates(layout.BootstrapServers, workload);
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = layout.BootstrapServers, GroupId = "prefill-test" }).Build();
        WatermarkOffsets Watermarks() => consumer.QueryWatermarkOffsets(new TopicPartition(FeedTopics.FeedUpdates, 0), TimeSpan.FromSeconds(10));

        updates.Prefill(perUser: 10, partitions: 1, timeout.Token);

        Assert.Equal((0L, 200L), (Watermarks().Low.Value, Watermarks().High.Value));
        Assert.Equal(0, updates.PostsSent);
        Assert.Equal(0, updates.UpdatesSent);

        // The embedded broker keeps the newest 5 MiB of a partition: 100,000 more updates do not all fit in one.
        var error = Assert.Throws<InvalidOperationException>(() => updates.Prefill(perUser: 5_000, partitions: 1, timeout.Token));
        Assert.Contains("5 MiB per partition", error.Message);
        Assert.True(Watermarks().Low.Value > 0, "the broker dropped the oldest updates");
    }

    /// <summary>
    /// The stateful raw loop (the processor's work hand-written): every update out and every store write in the
    /// changelog; with a feed size of 1, each user's second update drops the first (its entry and held key deleted,
    /// two changelog tombstones). The embedded broker shows records of open transactions to read-committed readers and
    /// does not store transactional offset commits, so nothing here can show that the transactions committed (a
    /// commit that fails throws, and fails the run).
    /// </summary>
    [Fact]
    public async Task StatefulLoop_TinyBacklog_CommitsEveryUpdateAndStoreWrite()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var layout = PipelineLayout.Create(partitions: 3);
        await using var broker = await PipelineProcesses.StartBrokerAsync(layout, timeout.Token);
        using var workload = new FeedWorkload(layout.BootstrapServers, subscribers: 20, fanOut: 4);
        workload.PostBacklog(10, timeout.Token);

        var (elapsed, changelogRecords, transactions, _) = StatefulFanOutLoop.Run(layout.BootstrapServers, workload, expected: 40, feedSize: 1, partitions: 3, timeout.Token);

        // 10 posts: a ledger and a recent-posts write each; 40 adds: held key, entry and head each; 20 drops: 2 deletes each.
        Assert.Equal(10 * 2 + 40 * 3 + 20 * 2, changelogRecords);
        Assert.True(transactions >= 1 && elapsed > TimeSpan.Zero, "the loop committed and was timed");
        Assert.Equal(40, CountCommitted(layout.BootstrapServers, StatefulFanOutLoop.UpdatesTopic, timeout.Token));
        Assert.Equal(changelogRecords, CountCommitted(layout.BootstrapServers, StatefulFanOutLoop.ChangelogTopic, timeout.Token));
    }

    /// <summary>Records a read-committed consumer reads from the start of <paramref name="topic"/> to its end.</summary>
    private static long CountCommitted(string bootstrapServers, string topic, CancellationToken cancellationToken)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = $"count-{Guid.NewGuid():N}",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnablePartitionEof = true,
        }).Build();
        consumer.Subscribe(topic);
        var atEnd = new HashSet<TopicPartition>();
        long count = 0;
        while (consumer.Assignment.Count == 0 || !consumer.Assignment.All(atEnd.Contains))
        {
            var result = consumer.Consume(cancellationToken);
            if (result.IsPartitionEOF)
            {
                atEnd.Add(result.TopicPartition);
            }
            else
            {
                atEnd.Remove(result.TopicPartition);
                count++;
            }
        }

        return count;
    }

    /// <summary>The replica scenario, tiny: every feed filled past small caps, then applies timed at them.</summary>
    [Fact]
    public void ReplicaScenario_TinyRun_TimesAppliesWithEveryFeedAtItsCaps()
    {
        var result = ReplicaScenario.Run(users: 200, prefill: 40, applies: 400, feedSize: 8, resumeWindow: 16, threads: 2);

        Assert.Equal((8, 16, 2, 400L), (result.FeedSize, result.ResumeWindow, result.Threads, result.Applies));
        Assert.Equal(8, result.FeedEntries);
        Assert.True(result.MicrosPerApply > 0 && result.AppliesPerSecond > 0 && result.CpuMicrosPerApply > 0 && result.PrefillSeconds > 0, "the applies were timed");
        Assert.NotNull(result.Work);
        Assert.Contains("the first holds 8", Report.Describe(result), StringComparison.Ordinal);
    }
}
