using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Pipeline.Kafka;
using Pipeline.Processor;

namespace Pipeline.Benchmarks;

public sealed record LatencyResult(
    int Subscribers, int FanOut, double PostsPerSecond, double Seconds, int PerConnection,
    long Posts, long Expected, long Deliveries, long Gaps, long Duplicates,
    double P50Ms, double P90Ms, double P99Ms, double P999Ms, double MaxMs,
    double DeliveriesPerSecond, double ProcessorInPerSecond, double ProcessorOutPerSecond,
    double BrokerCores, double ProcessorCores, double EdgeCores, double HarnessCores,
    long[] HistogramPercentilesUs,
    double EdgeApplyP50Ms = double.NaN, double EdgeApplyP99Ms = double.NaN,
    double CommitP50Ms = double.NaN, double CommitP99Ms = double.NaN, double CommitsPerSecond = double.NaN,
    double EdgeWriteP50Ms = double.NaN, double EdgeWriteP99Ms = double.NaN,
    GcWindow? EdgeGc = null,
    double SpanP50Ms = double.NaN, double SpanP99Ms = double.NaN,
    ReplicaWork? EdgeReplica = null);

/// <summary>A process's garbage collections over a window, from its runtime meters: counts by generation and pause time.</summary>
public sealed record GcWindow(double Gen0, double Gen1, double Gen2, double PauseMs, double AllocatedMiB)
{
    public double Collections => Gen0 + Gen1 + Gen2;

    /// <summary>Reads the runtime's cumulative GC meters from a Prometheus scrape.</summary>
    public static async Task<GcWindow> ScrapeAsync(HttpClient http, string url, CancellationToken cancellationToken)
    {
        var text = await http.GetStringAsync(new Uri(url), cancellationToken);
        double Generation(string gen) => PipelineProcesses.Sum(text, "dotnet_gc_collections_total", $"gc_heap_generation=\"{gen}\"");
        return new(
            Generation("gen0"), Generation("gen1"), Generation("gen2"),
            PipelineProcesses.Sum(text, "dotnet_gc_pause_time_seconds_total") * 1000,
            PipelineProcesses.Sum(text, "dotnet_gc_heap_total_allocated_bytes_total") / 1024 / 1024);
    }

    public GcWindow Since(GcWindow start) => new(Gen0 - start.Gen0, Gen1 - start.Gen1, Gen2 - start.Gen2, PauseMs - start.PauseMs, AllocatedMiB - start.AllocatedMiB);
}

/// <param name="StatefulUpdatesPerSecond">The raw loop with the processor's stores, changelogs and transactions (<see cref="StatefulFanOutLoop"/>).</param>
/// <param name="StatefulRatio">The processor's rate ÷ the stateful loop's: what Streamiz costs over the same work hand-written.</param>
public sealed record ThroughputResult(long Posts, int FanOut, double ProcessorUpdatesPerSecond, double RawLoopUpdatesPerSecond, double Ratio,
    double StatefulUpdatesPerSecond = double.NaN, double StatefulRatio = double.NaN, long StatefulChangelogRecords = 0, long StatefulTransactions = 0);

/// <param name="HeldSeconds">How long the subscribers were then held idle before the held figures (0: not measured, NaN).</param>
public sealed record SubscriberScaleResult(int Subscribers, int PerConnection, double OpensPerSecond, double EdgeBaselineMiB, double EdgeMiB, double BytesPerSubscriber, double HarnessMiB, double EdgePooledMiB, double EdgeGcCommittedMiB, double EdgeGcHeapMiB, double EdgeGcFragmentationMiB,
    double HeldSeconds, double EdgeHeldMiB, double BytesPerSubscriberHeld, double EdgePooledHeldMiB, double EdgeGcCommittedHeldMiB, string? EdgeCompaction);

public sealed record ResumeStormResult(int Subscribers, double SecondsToOpen, double SecondsToReady, double SecondsToCaughtUp, double SecondsToFirstResumed, double SecondsToHalfResumed, double SecondsTo90PercentResumed, double SecondsToAllResumed, long Gaps, long Duplicates, long Deliveries, long Expected,
    double BrokerCores, double ProcessorCores, double EdgeCores, double HarnessCores, string? EdgeCompaction);

public sealed record FanOutResult(int Followers, double SecondsToAllUpdates, double LongestStreamThreadSeconds, double ProcessorMiBBefore, double ProcessorMiBAfter);

/// <summary>The harness's scenarios; each starts its own broker, processor and edge processes and stops them.</summary>
public static class Scenarios
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The edge's histogram of post (Kafka timestamp) → update applied at the edge, before delivery.</summary>
    internal const string UpdateAge = "feed_edge_update_age_seconds";

    /// <summary>The edge's dispatch → stream write histogram: what comes after the apply.</summary>
    internal const string WriteDelay = "feed_edge_write_delay_seconds";

    /// <summary>The edge's log line when its replica has caught up and it starts serving.</summary>
    private const string EdgeCaughtUpLog = "Feed replica caught up";

    /// <summary>The edge's line when it compacts its heap after a subscribe burst (<c>BurstCompactor</c>).</summary>
    private const string EdgeCompactionLog = "Compacted the heap after a burst";

    /// <summary>The processor's histogram of exactly-once commits (offsets sent → transaction committed).</summary>
    private const string CommitDuration = "feed_processor_transaction_commit_duration_seconds";

    /// <summary>The processor's histogram of transaction spans (first record sent → commit).</summary>
    private const string TransactionSpan = "feed_processor_transaction_span_seconds";

    /// <summary>Extra processor settings for every scenario (e.g. Processor__Guarantee=AtLeastOnce), from the command line.</summary>
    public static Dictionary<string, string> ProcessorSettings { get; } = [];

    /// <summary>Edge configuration (or runtime knobs such as DOTNET_GCgen0size) for every edge this run starts.</summary>
    public static Dictionary<string, string> EdgeSettings { get; } = [];

    public static async Task<LatencyResult> LatencyAsync(int subscribers, int fanOut, double postsPerSecond, TimeSpan duration, int perConnection, int partitions, CancellationToken cancellationToken)
    {
        var layout = PipelineLayout.Create(partitions);
        Console.WriteLine($"latency: {subscribers} subscribers × fan-out {fanOut} @ {postsPerSecond}/s; run directory {layout.RunDirectory}");
        await using var broker = await PipelineProcesses.StartBrokerAsync(layout, cancellationToken);
        await using var processor = await PipelineProcesses.StartProcessorAsync(layout, cancellationToken, ProcessorSettings);
        await using var edge = await PipelineProcesses.StartEdgeAsync(layout, cancellationToken);
        Console.WriteLine("  broker, processor and edge are up");
        using var workload = new FeedWorkload(layout.BootstrapServers, subscribers, fanOut);
        using var http = new HttpClient();
        var processorMetrics = $"http://127.0.0.1:{layout.ProcessorMetricsPort}/metrics/";

        await workload.FollowAllAsync(cancellationToken);
        await WaitUntilAsync(async () => await PipelineProcesses.ScrapeAsync(http, processorMetrics, "feed_processor_follows_in_total", cancellationToken) >= subscribers, cancellationToken);
        Console.WriteLine($"  {subscribers} follows applied");

        await using var fleet = new SubscriberFleet();
        await fleet.OpenAsync($"http://127.0.0.1:{layout.GrpcPort}", [.. Enumerable.Range(0, subscribers).Select(FeedWorkload.User)], perConnection, cancellationToken);
        await PipelineProcesses.WaitForBurstSettledAsync(http, layout.WebPort, subscribers, cancellationToken);
        Console.WriteLine($"  {subscribers} subscribers live on {Math.Ceiling(subscribers / (double)perConnection)} connections; posting {postsPerSecond}/s for {duration.TotalSeconds} s");

        var edgeMetrics = $"http://127.0.0.1:{layout.WebPort}/metrics";
        var ageBefore = await PipelineProcesses.ScrapeBucketsAsync(http, edgeMetrics, UpdateAge, cancellationToken);
        var writesBefore = await PipelineProcesses.ScrapeBucketsAsync(http, edgeMetrics, WriteDelay, cancellationToken);
        var commitsBefore = await PipelineProcesses.ScrapeBucketsAsync(http, processorMetrics, CommitDuration, cancellationToken);
        var spansBefore = await PipelineProcesses.ScrapeBucketsAsync(http, processorMetrics, TransactionSpan, cancellationToken);
        var cpu = CpuSnapshot.Take(broker, processor, edge);
        var inBefore = await PipelineProcesses.ScrapeAsync(http, processorMetrics, "feed_processor_posts_in_total", cancellationToken);
        var outBefore = await PipelineProcesses.ScrapeAsync(http, processorMetrics, "feed_processor_feed_updates_out_total", cancellationToken);
        var started = DateTime.UtcNow;
        await workload.PostAsync(postsPerSecond, duration, cancellationToken);
        var expected = workload.PostsSent * fanOut;
        var drainDeadline = DateTime.UtcNow + DrainTimeout;
        while (fleet.Deliveries + fleet.Duplicates < expected && DateTime.UtcNow < drainDeadline)
        {
            await Task.Delay(100, cancellationToken);
        }

        var window = (fleet.LastDelivery - started).TotalSeconds;
        var cores = cpu.CoresSince();
        var processorIn = (await PipelineProcesses.ScrapeAsync(http, processorMetrics, "feed_processor_posts_in_total", cancellationToken)) - inBefore;
        var processorOut = (await PipelineProcesses.ScrapeAsync(http, processorMetrics, "feed_processor_feed_updates_out_total", cancellationToken)) - outBefore;
        var age = BucketHistogram.Delta(ageBefore, await PipelineProcesses.ScrapeBucketsAsync(http, edgeMetrics, UpdateAge, cancellationToken));
        var writes = BucketHistogram.Delta(writesBefore, await PipelineProcesses.ScrapeBucketsAsync(http, edgeMetrics, WriteDelay, cancellationToken));
        var commits = BucketHistogram.Delta(commitsBefore, await PipelineProcesses.ScrapeBucketsAsync(http, processorMetrics, CommitDuration, cancellationToken));
        var spans = BucketHistogram.Delta(spansBefore, await PipelineProcesses.ScrapeBucketsAsync(http, processorMetrics, TransactionSpan, cancellationToken));
        var h = fleet.Latency;
        return new LatencyResult(
            subscribers, fanOut, postsPerSecond, duration.TotalSeconds, perConnection,
            workload.PostsSent, expected, fleet.Deliveries, fleet.Gaps, fleet.Duplicates,
            Ms(h.GetValueAtPercentile(50)), Ms(h.GetValueAtPercentile(90)), Ms(h.GetValueAtPercentile(99)), Ms(h.GetValueAtPercentile(99.9)), Ms(h.GetValueAtPercentile(100)),
            fleet.Deliveries / window, processorIn / window, processorOut / window,
            cores[0], cores[1], cores[2], cores[3],
            [.. new[] { 10.0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100 }.Select(p => h.GetValueAtPercentile(p))],
            BucketHistogram.Quantile(age, 0.50) * 1000, BucketHistogram.Quantile(age, 0.99) * 1000,
            BucketHistogram.Quantile(commits, 0.50) * 1000, BucketHistogram.Quantile(commits, 0.99) * 1000, (commits.Count == 0 ? 0 : commits[^1].Count) / window,
            BucketHistogram.Quantile(writes, 0.50) * 1000, BucketHistogram.Quantile(writes, 0.99) * 1000,
            SpanP50Ms: BucketHistogram.Quantile(spans, 0.50) * 1000, SpanP99Ms: BucketHistogram.Quantile(spans, 0.99) * 1000);
    }

    /// <summary>
    /// The processor against the limit: a minimal Confluent.Kafka consume → in-memory fan-out → produce loop doing the
    /// same job on the same broker, both draining the same backlog of posts.
    /// </summary>
    public static async Task<ThroughputResult> ThroughputAsync(int subscribers, int fanOut, long posts, int partitions, CancellationToken cancellationToken)
    {
        var layout = PipelineLayout.Create(partitions);
        await using var broker = await PipelineProcesses.StartBrokerAsync(layout, cancellationToken);
        using var workload = new FeedWorkload(layout.BootstrapServers, subscribers, fanOut);
        using var http = new HttpClient();
        var processorMetrics = $"http://127.0.0.1:{layout.ProcessorMetricsPort}/metrics/";

        // Follows first, through the processor, so that both sides start from the same graph; then the backlog.
        await workload.FollowAllAsync(cancellationToken);
        var processor = await PipelineProcesses.StartProcessorAsync(layout, cancellationToken, ProcessorSettings);
        await WaitUntilAsync(async () => await PipelineProcesses.ScrapeAsync(http, processorMetrics, "feed_processor_follows_in_total", cancellationToken) >= subscribers, cancellationToken);
        await processor.DisposeAsync();
        workload.PostBacklog(posts, cancellationToken);
        var expected = posts * fanOut;

        var raw = RawFanOutLoop.Run(layout.BootstrapServers, workload, expected, cancellationToken);
        Console.WriteLine($"  raw loop: {expected} updates in {raw.TotalSeconds:F2} s");
        var feedSize = ProcessorSettings.TryGetValue("Processor__FeedSize", out var size) ? int.Parse(size, CultureInfo.InvariantCulture) : new ProcessorOptions().FeedSize;
        var stateful = StatefulFanOutLoop.Run(layout.BootstrapServers, workload, expected, feedSize, partitions, cancellationToken);
        Console.WriteLine($"  stateful raw loop: {expected} updates in {stateful.Elapsed.TotalSeconds:F2} s ({stateful.ChangelogRecords} changelog records, {stateful.Transactions} transactions, {stateful.CommitTime.TotalSeconds:F2} s of it committing)");

        // Timed from the first post the processor reads to its last update out: both of its hops, without its
        // start-up (JIT, group join, restore), as the raw loop is timed from its first record.
        var stopwatch = Stopwatch.StartNew();
        await using var restarted = await PipelineProcesses.StartProcessorAsync(layout, cancellationToken, ProcessorSettings);
        double first = -1;
        await WaitUntilAsync(
            async () =>
            {
                if (first < 0 && await PipelineProcesses.ScrapeAsync(http, processorMetrics, "feed_processor_posts_in_total", cancellationToken) > 0)
                {
                    first = stopwatch.Elapsed.TotalSeconds;
                }

                return first >= 0 && await PipelineProcesses.ScrapeAsync(http, processorMetrics, "feed_processor_feed_updates_out_total", cancellationToken) >= expected;
            },
            cancellationToken,
            pollMs: 20);
        var processorSeconds = stopwatch.Elapsed.TotalSeconds - first;
        Console.WriteLine($"  processor: {expected} updates in {processorSeconds:F2} s (from its first post read, {first:F1} s after it was started)");
        var processorRate = expected / processorSeconds;
        var rawRate = expected / raw.TotalSeconds;
        var statefulRate = expected / stateful.Elapsed.TotalSeconds;
        return new ThroughputResult(posts, fanOut, processorRate, rawRate, processorRate / rawRate, statefulRate, processorRate / statefulRate, stateful.ChangelogRecords, stateful.Transactions);
    }

    /// <param name="opensPerSecond">How fast the subscribers arrive; 0 opens them all at once.</param>
    /// <param name="held">
    /// Measure again after holding the open subscribers this long (zero: only right after they opened). A burst of
    /// opens leaves free pool blocks and GC free space behind; Kestrel evicts idle pool blocks every 10 s, and the GC
    /// gives free space back at its collections, so the held figure is what the edge keeps per subscriber it holds.
    /// </param>
    public static async Task<SubscriberScaleResult> SubscriberScaleAsync(int subscribers, int perConnection, CancellationToken cancellationToken, double opensPerSecond = 0, TimeSpan held = default)
    {
        var layout = PipelineLayout.Create(6);
        await using var broker = await PipelineProcesses.StartBrokerAsync(layout, cancellationToken);
        await using var edge = await PipelineProcesses.StartEdgeAsync(layout, cancellationToken, new Dictionary<string, string> { ["Edge__HeartbeatInterval"] = "00:01:00" });
        await Task.Delay(2000, cancellationToken);
        var baseline = edge.PrivateBytes();
        await using var fleet = new SubscriberFleet();
        await fleet.OpenAsync($"http://127.0.0.1:{layout.GrpcPort}", [.. Enumerable.Range(0, subscribers).Select(FeedWorkload.User)], perConnection, cancellationToken, opensPerSecond);
        await Task.Delay(3000, cancellationToken);
        var harness = Process.GetCurrentProcess().PrivateMemorySize64;

        // What the private bytes are made of: the free blocks Kestrel's memory pool keeps from the subscribe burst,
        // and what the GC has committed (as of its last collection).
        using var http = new HttpClient();
        async Task<(long Private, double Pooled, double Committed, double Heap, double Fragmentation)> ReadEdgeAsync()
        {
            var privateBytes = edge.PrivateBytes();
            var metrics = await http.GetStringAsync(new Uri($"http://127.0.0.1:{layout.WebPort}/metrics"), cancellationToken);
            return (privateBytes,
                PipelineProcesses.Value(metrics, "feed_edge_memory_pool_free_bytes"),
                PipelineProcesses.Value(metrics, "dotnet_gc_last_collection_memory_committed_size_bytes"),
                PipelineProcesses.Sum(metrics, "dotnet_gc_last_collection_heap_size_bytes"),
                PipelineProcesses.Sum(metrics, "dotnet_gc_last_collection_heap_fragmentation_size_bytes"));
        }

        var loaded = await ReadEdgeAsync();
        var heldReading = (Private: double.NaN, Pooled: double.NaN, Committed: double.NaN);
        if (held > TimeSpan.Zero)
        {
            await Task.Delay(held, cancellationToken);
            if (fleet.Live != subscribers)
            {
                throw new InvalidOperationException($"{fleet.Live} of {subscribers} subscribers were still open after {held.TotalSeconds} s held; the held figure would not be per subscriber.");
            }

            var reading = await ReadEdgeAsync();
            heldReading = (reading.Private, reading.Pooled, reading.Committed);
        }

        return new SubscriberScaleResult(subscribers, perConnection, opensPerSecond, MiB(baseline), MiB(loaded.Private), (loaded.Private - baseline) / (double)subscribers, MiB(harness), MiB(loaded.Pooled), MiB(loaded.Committed), MiB(loaded.Heap), MiB(loaded.Fragmentation),
            held.TotalSeconds, MiB(heldReading.Private), (heldReading.Private - baseline) / subscribers, MiB(heldReading.Pooled), MiB(heldReading.Committed),
            edge.LastLineContaining(EdgeCompactionLog));
    }

    /// <summary>Subscribers attached with cursors; the edge is stopped (SIGTERM) and started again while posts flow.</summary>
    public static async Task<ResumeStormResult> ResumeStormAsync(int subscribers, int fanOut, int perConnection, CancellationToken cancellationToken)
    {
        var layout = PipelineLayout.Create(6);
        await using var broker = await PipelineProcesses.StartBrokerAsync(layout, cancellationToken);
        await using var processor = await PipelineProcesses.StartProcessorAsync(layout, cancellationToken, ProcessorSettings);
        var edge = await PipelineProcesses.StartEdgeAsync(layout, cancellationToken);
        using var workload = new FeedWorkload(layout.BootstrapServers, subscribers, fanOut);
        using var http = new HttpClient();
        await workload.FollowAllAsync(cancellationToken);
        await WaitUntilAsync(async () => await PipelineProcesses.ScrapeAsync(http, $"http://127.0.0.1:{layout.ProcessorMetricsPort}/metrics/", "feed_processor_follows_in_total", cancellationToken) >= subscribers, cancellationToken);

        await using var fleet = new SubscriberFleet();
        var opening = Stopwatch.StartNew();
        await fleet.OpenAsync($"http://127.0.0.1:{layout.GrpcPort}", [.. Enumerable.Range(0, subscribers).Select(FeedWorkload.User)], perConnection, cancellationToken);
        var opened = opening.Elapsed.TotalSeconds;
        var posting = workload.PostAsync(50, TimeSpan.FromSeconds(12), cancellationToken);
        await Task.Delay(3000, cancellationToken);

        await edge.StopAsync(TimeSpan.FromSeconds(30));
        await WaitUntilAsync(() => Task.FromResult(fleet.Live == 0), cancellationToken);
        var spawned = Stopwatch.GetTimestamp();
        var cpu = CpuSnapshot.Take(broker, processor);
        await using var newEdge = await PipelineProcesses.StartEdgeAsync(layout, cancellationToken);
        var ready = Stopwatch.GetElapsedTime(spawned).TotalSeconds;
        await WaitUntilAsync(() => Task.FromResult(fleet.Live == subscribers), cancellationToken, pollMs: 10);
        var resumed = Stopwatch.GetElapsedTime(spawned).TotalSeconds;

        // Cores each process used from the spawn until the last resume; the new edge's is all it used in its life.
        var cores = cpu.CoresSince();
        var edgeCores = newEdge.CpuTime().TotalSeconds / resumed;
        var resumedAt = fleet.LiveSince().Select(t => Stopwatch.GetElapsedTime(spawned, t).TotalSeconds).ToArray();

        // The edge logs the moment its replica caught up; /healthz ("ready") can answer late under the resume flood.
        var caughtUp = newEdge.FirstOutputAt(EdgeCaughtUpLog) is { } at ? Stopwatch.GetElapsedTime(spawned, at).TotalSeconds : double.NaN;
        await posting;
        var expected = workload.PostsSent * fanOut;
        var deadline = DateTime.UtcNow + DrainTimeout;
        while (fleet.Deliveries < expected && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, cancellationToken);
        }

        await edge.DisposeAsync();
        return new ResumeStormResult(
            subscribers, opened, ready, caughtUp, resumedAt[0], resumedAt[resumedAt.Length / 2], resumedAt[resumedAt.Length * 9 / 10], resumed,
            fleet.Gaps, fleet.Duplicates, fleet.Deliveries, expected, cores[0], cores[1], edgeCores, cores[2], newEdge.LastLineContaining(EdgeCompactionLog));
    }

    /// <summary>One post by an author with <paramref name="followers"/> followers: time and memory of the fan-out.</summary>
    public static async Task<FanOutResult> LargeAuthorAsync(int followers, CancellationToken cancellationToken)
    {
        var layout = PipelineLayout.Create(6);
        await using var broker = await PipelineProcesses.StartBrokerAsync(layout, cancellationToken);
        await using var processor = await PipelineProcesses.StartProcessorAsync(layout, cancellationToken, ProcessorSettings);
        using var workload = new FeedWorkload(layout.BootstrapServers, followers, followers);
        using var http = new HttpClient();
        var metrics = $"http://127.0.0.1:{layout.ProcessorMetricsPort}/metrics/";
        await workload.FollowAllAsync(cancellationToken);
        await WaitUntilAsync(async () => await PipelineProcesses.ScrapeAsync(http, metrics, "feed_processor_follows_in_total", cancellationToken) >= followers, cancellationToken);
        await Task.Delay(2000, cancellationToken);
        var before = processor.PrivateBytes();
        var peak = before;

        var stopwatch = Stopwatch.StartNew();
        workload.PostBacklog(1, cancellationToken);
        await WaitUntilAsync(
            async () =>
            {
                peak = Math.Max(peak, processor.PrivateBytes());
                return await PipelineProcesses.ScrapeAsync(http, metrics, "feed_processor_feed_updates_out_total", cancellationToken) >= followers;
            },
            cancellationToken,
            pollMs: 20);
        var seconds = stopwatch.Elapsed.TotalSeconds;
        var longest = await PipelineProcesses.ScrapeAsync(http, metrics, "feed_processor_fanout_longest_seconds", cancellationToken);
        return new FanOutResult(followers, seconds, longest, MiB(before), MiB(peak));
    }

    private static double Ms(long microseconds) => microseconds / 1000.0;

    private static double MiB(double bytes) => bytes / 1024 / 1024;

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, CancellationToken cancellationToken, int pollMs = 100)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        while (!await condition())
        {
            await Task.Delay(pollMs, timeout.Token);
        }
    }

    /// <summary>CPU time of each process at one moment, to turn into cores used over a window.</summary>
    private sealed class CpuSnapshot
    {
        private readonly ServiceProcess[] _processes;
        private readonly TimeSpan[] _cpu;
        private readonly TimeSpan _harnessCpu;
        private readonly Stopwatch _wall = Stopwatch.StartNew();

        private CpuSnapshot(ServiceProcess[] processes)
        {
            _processes = processes;
            _cpu = [.. processes.Select(p => p.CpuTime())];
            _harnessCpu = Process.GetCurrentProcess().TotalProcessorTime;
        }

        public static CpuSnapshot Take(params ServiceProcess[] processes) => new(processes);

        public double[] CoresSince()
        {
            var wall = _wall.Elapsed.TotalSeconds;
            var harness = (Process.GetCurrentProcess().TotalProcessorTime - _harnessCpu).TotalSeconds / wall;
            return [.. _processes.Select((p, i) => (p.CpuTime() - _cpu[i]).TotalSeconds / wall), harness];
        }
    }
}

/// <summary>
/// The raw loop: consume social.posts, look the author's followers up in memory, produce one FeedUpdate per follower
/// (at-least-once, no state store, no transactions) — the upper bound for the same fan-out on this broker.
/// </summary>
public static class RawFanOutLoop
{
    public static TimeSpan Run(string bootstrapServers, FeedWorkload workload, long expected, CancellationToken cancellationToken)
    {
        var followers = workload.FollowersByAuthor();
        using var consumer = new ConsumerBuilder<string, byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = $"raw-loop-{Guid.NewGuid():N}",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = true,
            FetchWaitMaxMs = 50,
        }).Build();
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            LingerMs = 5,
            EnableIdempotence = true,
            Partitioner = Partitioner.Murmur2Random,
        }).Build();
        consumer.Subscribe(FeedTopics.Posts);
        long produced = 0;
        Stopwatch? stopwatch = null;
        while (produced < expected && !cancellationToken.IsCancellationRequested)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result?.Message is null)
            {
                continue;
            }

            stopwatch ??= Stopwatch.StartNew();
            var post = PostEvent.Parser.ParseFrom(result.Message.Value);
            var feedPost = new Post { PostId = post.PostId, AuthorId = post.AuthorId, Body = post.Body, CreatedAtMs = post.CreatedAtMs };
            foreach (var recipient in followers.GetValueOrDefault(post.AuthorId, []))
            {
                var update = new FeedUpdate { RecipientId = recipient, Kind = FeedUpdateKind.Added, Cause = FeedCause.Live, Post = feedPost, SourceOccurredAtMs = post.OccurredAtMs };
                Produce(producer, "bench.raw-updates", recipient, update.ToByteArray());
                produced++;
            }
        }

        producer.Flush(cancellationToken);
        consumer.Close();
        return stopwatch?.Elapsed ?? TimeSpan.Zero;
    }

    /// <summary>Produces, waiting for room while the producer's queue is full.</summary>
    internal static void Produce<TKey>(IProducer<TKey, byte[]> producer, string topic, TKey key, byte[]? value)
    {
        while (true)
        {
            try
            {
                producer.Produce(topic, new Message<TKey, byte[]> { Key = key, Value = value! });
                return;
            }
            catch (ProduceException<TKey, byte[]> ex) when (ex.Error.Code == ErrorCode.Local_QueueFull)
            {
                producer.Poll(TimeSpan.FromMilliseconds(10));
            }
        }
    }
}
