using Buckets = System.Collections.Generic.List<(double UpperBound, double Count)>;
using System.Diagnostics;
using System.Globalization;

namespace Pipeline.Benchmarks;

/// <summary>
/// Our edge and its Socket.IO peer doing the same delivery job in one run. <see cref="Ours"/> is measured like the
/// latency scenario; in <see cref="Peer"/>, EdgeCores is the socket.io server and HarnessCores the socket.io-client
/// fleet process. Ratios are ours ÷ peer's (deliveries/s above 1 and latency below 1 favour our edge); null when the
/// peer delivered nothing.
/// </summary>
public sealed record PeerResult(
    LatencyResult Ours, LatencyResult Peer,
    double? DeliveriesPerSecondRatio, double? P50Ratio, double? P99Ratio,
    double EdgeMiB, double PeerServerMiB, long PeerReconnects, string PeerStack, OurClient OurClient, int Prefill)
{
    public override string ToString() => string.Join(
        Environment.NewLine,
        "  ours: " + Report.Describe(Ours),
        "  peer: " + Report.Describe(Peer),
        string.Create(
            CultureInfo.InvariantCulture,
            $"peer     | {(Prefill > 0 ? $"every feed prefilled with {Prefill} updates | " : "")}ours ({OurClient.Describe()}) ÷ Socket.IO peer: deliveries/s {Format(DeliveriesPerSecondRatio)} · p50 {Format(P50Ratio)} · p99 {Format(P99Ratio)} | memory: edge {EdgeMiB:F0} MiB ({Ours.PerConnection}/conn), socket.io server {PeerServerMiB:F0} MiB (1/conn) | peer reconnects {PeerReconnects} | {PeerStack}"));

    private static string Format(double? ratio) => ratio?.ToString("F2", CultureInfo.InvariantCulture) ?? "n/a (peer delivered nothing)";
}

/// <summary>Which subscriber fleet reads our edge in the peer scenario.</summary>
public enum OurClient
{
    /// <summary>The harness's own .NET fleet (<see cref="SubscriberFleet"/>, Grpc.Net.Client), inside the harness process.</summary>
    DotNet,

    /// <summary>
    /// tests/peer-socketio/grpc-client.js (@grpc/grpc-js), a Node process like the peer's socket.io-client fleet: the
    /// two servers are then compared through clients on the same runtime, each its own process.
    /// </summary>
    Node,
}

public static class OurClientExtensions
{
    public static string Describe(this OurClient client) => client == OurClient.Node ? "Node @grpc/grpc-js clients" : ".NET Grpc.Net.Client clients";
}

/// <summary>
/// One broker and one processor; the same workload (subscribers, fan-out, posts/s, duration) first against our edge
/// with gRPC subscribers, then — with the edge stopped — against the Socket.IO peer (socket.io server fed from
/// feed.updates by kafkajs, socket.io-client subscribers), both reading the same feed.updates. With
/// <c>direct</c>, no processor runs: the harness writes the feed updates to feed.updates itself
/// (<see cref="DirectFeedUpdates"/>), so both delivery layers are measured above the processor's ≈ 2,000 updates/s.
/// </summary>
public static class PeerScenario
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(60);

    public static async Task<PeerResult> RunAsync(int subscribers, int fanOut, double postsPerSecond, TimeSpan duration, int perConnection, int partitions, bool direct, string? peerDirectory, OurClient ourClient, CancellationToken cancellationToken, int prefill = 0)
    {
        if (prefill > 0 && !direct)
        {
            throw new ArgumentException("--prefill writes feed.updates itself, so it needs --direct.", nameof(prefill));
        }

        // Before any process starts: a missing Node or npm install fails the run at once with the command to run.
        var peer = await SocketIoPeer.PrepareAsync(peerDirectory, cancellationToken);
        var layout = PipelineLayout.Create(partitions);
        Console.WriteLine($"peer: {subscribers} subscribers × fan-out {fanOut} @ {postsPerSecond}/s for {duration.TotalSeconds} s{(direct ? ", feed updates written directly (no processor)" : "")}, our edge ({ourClient.Describe()}) then Socket.IO ({peer.PeerDirectory}); run directory {layout.RunDirectory}");
        await using var broker = await PipelineProcesses.StartBrokerAsync(layout, cancellationToken);
        await using var processor = direct ? null : await PipelineProcesses.StartProcessorAsync(layout, cancellationToken, Scenarios.ProcessorSettings);
        using var workload = new FeedWorkload(layout.BootstrapServers, subscribers, fanOut);
        using var directUpdates = direct ? new DirectFeedUpdates(layout.BootstrapServers, workload) : null;
        using var http = new HttpClient();
        var processorMetrics = direct ? null : $"http://127.0.0.1:{layout.ProcessorMetricsPort}/metrics/";
        Func<TimeSpan> processorCpu = processor is null ? () => TimeSpan.Zero : processor.CpuTime;
        Func<Task> post = directUpdates is null
            ? () => workload.PostAsync(postsPerSecond, duration, cancellationToken)
            : () => directUpdates.PostAsync(postsPerSecond, duration, cancellationToken);
        Func<long> postsSent = directUpdates is null ? () => workload.PostsSent : () => directUpdates.PostsSent;

        // Drives a live Node fleet (ours over gRPC, or the peer's) through one posting window and reads its summary.
        // Cores are the broker's, the processor's and the server's (our edge or the socket.io server) over the
        // window; the fleet's own figure stands in the harness's column.
        async Task<(LatencyResult Result, PeerFleetSummary Summary)> DriveNodeFleetAsync(ServiceProcess fleet, Func<TimeSpan> serverCpu, int streamsPerConnection)
        {
            var before = postsSent();
            var cpu = new CpuWindow(broker.CpuTime, processorCpu, serverCpu);
            var counts = await ProcessorCounts.ReadAsync(http, processorMetrics, cancellationToken);
            var started = DateTime.UtcNow;
            await fleet.SendAsync("start");
            await post();
            var posts = postsSent() - before;
            var expected = posts * fanOut;
            await fleet.SendAsync(string.Create(CultureInfo.InvariantCulture, $"expect {expected}"));
            var summary = await SocketIoPeer.ReadSummaryAsync(fleet, DrainTimeout + TimeSpan.FromSeconds(30), cancellationToken);
            var cores = cpu.Cores();
            var window = (summary.LastDeliveryUnixMs - (started - DateTime.UnixEpoch).TotalMilliseconds) / 1000;
            var (processorIn, processorOut) = await counts.RatesSinceAsync(window);
            return (
                new LatencyResult(
                    subscribers, fanOut, postsPerSecond, duration.TotalSeconds, streamsPerConnection,
                    posts, expected, summary.Deliveries, summary.Gaps, summary.Duplicates,
                    summary.P50Ms, summary.P90Ms, summary.P99Ms, summary.P999Ms, summary.MaxMs,
                    window > 0 ? summary.Deliveries / window : 0, processorIn, processorOut,
                    cores[0], cores[1], cores[2], summary.CoresUsed,
                    summary.HistogramPercentilesUs),
                summary);
        }

        if (directUpdates is not null && prefill > 0)
        {
            var filling = Stopwatch.StartNew();
            var written = directUpdates.Prefill(prefill, partitions, cancellationToken);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  prefilled {prefill} updates per subscriber ({written:N0}) in {filling.Elapsed.TotalSeconds:F1} s; the edge catches up before anyone subscribes"));
        }

        if (processorMetrics is not null)
        {
            await workload.FollowAllAsync(cancellationToken);
            await WaitUntilAsync(async () => await PipelineProcesses.ScrapeAsync(http, processorMetrics, "feed_processor_follows_in_total", cancellationToken) >= subscribers, cancellationToken);
            Console.WriteLine($"  {subscribers} follows applied");
        }

        LatencyResult ours;
        double edgeMiB;
        // A prefilled feed.updates takes the edge minutes to apply before it reports ready.
        await using (var edge = await PipelineProcesses.StartEdgeAsync(layout, cancellationToken, readyTimeout: TimeSpan.FromSeconds(90 + prefill * subscribers / 10_000.0)))
        {
            var edgeMetrics = $"http://127.0.0.1:{layout.WebPort}/metrics";
            async Task<(Buckets Ages, Buckets Writes, GcWindow Gc, DateTime At)> EdgeMeters() => (
                await PipelineProcesses.ScrapeBucketsAsync(http, edgeMetrics, Scenarios.UpdateAge, cancellationToken),
                await PipelineProcesses.ScrapeBucketsAsync(http, edgeMetrics, Scenarios.WriteDelay, cancellationToken),
                await GcWindow.ScrapeAsync(http, edgeMetrics, cancellationToken),
                DateTime.UtcNow);
            LatencyResult WithEdgeMeters(LatencyResult result, (Buckets Ages, Buckets Writes, GcWindow Gc, DateTime At) before, (Buckets Ages, Buckets Writes, GcWindow Gc, DateTime At) after)
            {
                var age = BucketHistogram.Delta(before.Ages, after.Ages);
                var writes = BucketHistogram.Delta(before.Writes, after.Writes);
                return result with
                {
                    EdgeApplyP50Ms = BucketHistogram.Quantile(age, 0.50) * 1000, EdgeApplyP99Ms = BucketHistogram.Quantile(age, 0.99) * 1000,
                    EdgeWriteP50Ms = BucketHistogram.Quantile(writes, 0.50) * 1000, EdgeWriteP99Ms = BucketHistogram.Quantile(writes, 0.99) * 1000,
                    EdgeGc = after.Gc.Since(before.Gc),
                    EdgeReplica = ReplicaWork.Read(layout.EdgeReplicaLog, before.At, after.At),
                };
            }

            if (ourClient == OurClient.Node)
            {
                await using var fleet = await peer.StartGrpcFleetAsync(layout.GrpcPort, SubscriberFleet.ServiceToken(), perConnection, subscribers, workload.Authors, postsSent(), duration, DrainTimeout, layout.RunDirectory, cancellationToken);
                await PipelineProcesses.WaitForBurstSettledAsync(http, layout.WebPort, subscribers, cancellationToken);
                Console.WriteLine($"  ours: {subscribers} Node gRPC subscribers (@grpc/grpc-js) live on {Math.Ceiling(subscribers / (double)perConnection)} connections; posting");
                var buckets = await EdgeMeters();
                var (result, summary) = await DriveNodeFleetAsync(fleet, edge.CpuTime, perConnection);
                ours = WithEdgeMeters(result, buckets, await EdgeMeters());
                edgeMiB = edge.PrivateBytes() / 1024.0 / 1024.0;
                Console.WriteLine("  ours: " + Report.Describe(ours) + $" | client ended: {summary.Reason}");
            }

            else
            {
                await using var fleet = new SubscriberFleet();
                await fleet.OpenAsync($"http://127.0.0.1:{layout.GrpcPort}", [.. Enumerable.Range(0, subscribers).Select(FeedWorkload.User)], perConnection, cancellationToken);
                await PipelineProcesses.WaitForBurstSettledAsync(http, layout.WebPort, subscribers, cancellationToken);
                Console.WriteLine($"  ours: {subscribers} gRPC subscribers live on {Math.Ceiling(subscribers / (double)perConnection)} connections; posting");

                var cpu = new CpuWindow(broker.CpuTime, processorCpu, edge.CpuTime, () => Process.GetCurrentProcess().TotalProcessorTime);
                var counts = await ProcessorCounts.ReadAsync(http, processorMetrics, cancellationToken);
                var buckets = await EdgeMeters();
                var started = DateTime.UtcNow;
                await post();
                var expected = postsSent() * fanOut;
                var drainDeadline = DateTime.UtcNow + DrainTimeout;
                while (fleet.Deliveries + fleet.Duplicates < expected && DateTime.UtcNow < drainDeadline)
                {
                    await Task.Delay(100, cancellationToken);
                }

                var cores = cpu.Cores();
                var window = (fleet.LastDelivery - started).TotalSeconds;
                var (processorIn, processorOut) = await counts.RatesSinceAsync(window);
                edgeMiB = edge.PrivateBytes() / 1024.0 / 1024.0;
                var h = fleet.Latency;
                ours = WithEdgeMeters(
                    new LatencyResult(
                        subscribers, fanOut, postsPerSecond, duration.TotalSeconds, perConnection,
                        postsSent(), expected, fleet.Deliveries, fleet.Gaps, fleet.Duplicates,
                        Ms(h.GetValueAtPercentile(50)), Ms(h.GetValueAtPercentile(90)), Ms(h.GetValueAtPercentile(99)), Ms(h.GetValueAtPercentile(99.9)), Ms(h.GetValueAtPercentile(100)),
                        window > 0 ? fleet.Deliveries / window : 0, processorIn, processorOut,
                        cores[0], cores[1], cores[2], cores[3],
                        [.. new[] { 10.0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100 }.Select(p => h.GetValueAtPercentile(p))]),
                    buckets,
                    await EdgeMeters());
                Console.WriteLine("  ours: " + Report.Describe(ours));
            }
        }

        // The edge is stopped: during the peer's turn only the broker, the processor and the peer's processes run.
        var postsBefore = postsSent();
        var (server, port) = await peer.StartServerAsync(layout.BootstrapServers, layout.RunDirectory, cancellationToken);
        await using (server)
        {
            await using var fleet = await peer.StartFleetAsync(port, subscribers, workload.Authors, postsBefore, duration, DrainTimeout, layout.RunDirectory, cancellationToken);
            Console.WriteLine($"  peer: {subscribers} socket.io-client subscribers live, one WebSocket each; posting");

            var (peerResult, summary) = await DriveNodeFleetAsync(fleet, server.CpuTime, 1);
            var serverMiB = server.PrivateBytes() / 1024.0 / 1024.0;
            Console.WriteLine("  peer: " + Report.Describe(peerResult) + $" | client ended: {summary.Reason}");

            return new PeerResult(
                ours, peerResult,
                Ratio(ours.DeliveriesPerSecond, peerResult.DeliveriesPerSecond), Ratio(ours.P50Ms, peerResult.P50Ms), Ratio(ours.P99Ms, peerResult.P99Ms),
                edgeMiB, serverMiB, summary.Reconnects, summary.Stack, ourClient, prefill);
        }
    }

    private static double? Ratio(double ours, double peer) => peer > 0 ? ours / peer : null;

    private static double Ms(long microseconds) => microseconds / 1000.0;

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        while (!await condition())
        {
            await Task.Delay(100, timeout.Token);
        }
    }

    /// <summary>Cores used by each process since construction: CPU time over wall time.</summary>
    private sealed class CpuWindow
    {
        private readonly Func<TimeSpan>[] _cpuTimes;
        private readonly TimeSpan[] _start;
        private readonly Stopwatch _wall = Stopwatch.StartNew();

        public CpuWindow(params Func<TimeSpan>[] cpuTimes)
        {
            _cpuTimes = cpuTimes;
            _start = [.. cpuTimes.Select(cpu => cpu())];
        }

        public double[] Cores()
        {
            var wall = _wall.Elapsed.TotalSeconds;
            return [.. _cpuTimes.Select((cpu, i) => (cpu() - _start[i]).TotalSeconds / wall)];
        }
    }

    /// <summary>The processor's posts-in and updates-out counters at one moment, to turn into rates over a window.</summary>
    private sealed class ProcessorCounts(HttpClient http, string? url, double postsIn, double updatesOut, CancellationToken cancellationToken)
    {
        /// <summary>Reads the counters; without a processor (<paramref name="url"/> null) every rate is 0.</summary>
        public static async Task<ProcessorCounts> ReadAsync(HttpClient http, string? url, CancellationToken cancellationToken) =>
            url is null
                ? new(http, null, 0, 0, cancellationToken)
                : new(
                    http,
                    url,
                    await PipelineProcesses.ScrapeAsync(http, url, "feed_processor_posts_in_total", cancellationToken),
                    await PipelineProcesses.ScrapeAsync(http, url, "feed_processor_feed_updates_out_total", cancellationToken),
                    cancellationToken);

        public async Task<(double PostsIn, double UpdatesOut)> RatesSinceAsync(double seconds)
        {
            if (url is null)
            {
                return (0, 0);
            }

            var postsInNow = await PipelineProcesses.ScrapeAsync(http, url, "feed_processor_posts_in_total", cancellationToken);
            var updatesOutNow = await PipelineProcesses.ScrapeAsync(http, url, "feed_processor_feed_updates_out_total", cancellationToken);
            return seconds > 0 ? ((postsInNow - postsIn) / seconds, (updatesOutNow - updatesOut) / seconds) : (0, 0);
        }
    }
}
