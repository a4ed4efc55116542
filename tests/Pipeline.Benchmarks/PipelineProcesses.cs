using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Pipeline.DevStack;

namespace Pipeline.Benchmarks;

/// <summary>Where a run's processes listen and keep their state.</summary>
public sealed record PipelineLayout(int KafkaPort, int GrpcPort, int WebPort, int ProcessorMetricsPort, int Partitions, string RunDirectory)
{
    public string BootstrapServers => $"127.0.0.1:{KafkaPort}";

    public string EdgeStateDirectory => Path.Combine(RunDirectory, "edge-state");

    /// <summary>RocksDB's log of the edge's replica (<see cref="ReplicaWork"/>).</summary>
    public string EdgeReplicaLog => ReplicaWork.LogIn(EdgeStateDirectory);

    public static PipelineLayout Create(int partitions)
    {
        var run = Path.Combine(Path.GetTempPath(), "feed-bench", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..6]);
        return new PipelineLayout(FreePort(), FreePort(), FreePort(), FreePort(), partitions, run);
    }

    /// <summary>A loopback port free right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>The embedded broker, the processor and the edge, each its own process, wired by configuration only.</summary>
public static class PipelineProcesses
{
    public const string ApplicationId = "feed-processor";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    /// <param name="faultControl">Accept fault-injection commands through <see cref="ServiceProcess.SendAsync"/>.</param>
    public static async Task<ServiceProcess> StartBrokerAsync(PipelineLayout layout, CancellationToken cancellationToken, bool faultControl = false)
    {
        var broker = ServiceProcess.Start(
            "broker",
            "DevStack.dll",
            $"--broker-only --kafka-port {layout.KafkaPort} --partitions {layout.Partitions} --application-id {ApplicationId}{(faultControl ? " --fault-control" : "")}",
            Path.Combine(layout.RunDirectory, "broker"),
            new Dictionary<string, string>(),
            control: faultControl);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StartTimeout);
        await broker.WaitForOutputAsync("Embedded Kafka broker ready", timeout.Token);
        return broker;
    }

    public static async Task<ServiceProcess> StartProcessorAsync(PipelineLayout layout, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? extra = null)
    {
        var environment = new Dictionary<string, string>
        {
            ["Kafka__BootstrapServers"] = layout.BootstrapServers,
            ["Processor__ApplicationId"] = ApplicationId,
            ["Processor__StateDir"] = Path.Combine(layout.RunDirectory, "processor-state"),
            ["Processor__ProvisionTopics"] = "false",
            ["Processor__TopicPartitions"] = layout.Partitions.ToString(CultureInfo.InvariantCulture),
            ["Processor__ReplicationFactor"] = "1",
            ["Processor__MetricsUrl"] = $"http://127.0.0.1:{layout.ProcessorMetricsPort}/metrics/",
            ["Logging__LogLevel__Default"] = "Information",
            ["Logging__LogLevel__Streamiz"] = "Warning",

            // librdkafka's mock coordinator holds every rebalance after the first for session.timeout.ms - 1 s, even
            // after a clean LeaveGroup (a real broker completes it as soon as the known members have rejoined): at
            // the 45 s default, a restarted or second-thread processor idled 44 s. 6 s is the lowest a real broker
            // accepts; the fault battery uses the same.
            ["Processor__SessionTimeoutMs"] = "6000",

            // The mock answers an empty fetch only when fetch.wait.max.ms expires, where a real broker answers as
            // soon as data arrives; the embedded dev stack sets the same (DevStackHost).
            ["Processor__FetchWaitMaxMs"] = "10",
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            environment[key] = value;
        }

        var processor = ServiceProcess.Start("processor", "Processor.dll", "", Path.Combine(layout.RunDirectory, "processor"), environment);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StartTimeout);
        await processor.WaitForOutputAsync("-> RUNNING", timeout.Token);
        return processor;
    }

    public static async Task<ServiceProcess> StartEdgeAsync(PipelineLayout layout, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? extra = null, TimeSpan? readyTimeout = null)
    {
        var environment = new Dictionary<string, string>
        {
            ["Kafka__BootstrapServers"] = layout.BootstrapServers,
            ["Edge__StateDir"] = layout.EdgeStateDirectory,
            ["Edge__CursorSigningKey"] = Convert.ToBase64String(new byte[32]),
            ["Edge__MaxSubscriptionsPerUser"] = "1000",
            ["Auth__Issuer"] = DevTokens.Issuer,
            ["Auth__Audience"] = DevTokens.Audience,
            ["Auth__SigningKeys__0"] = DevTokens.SigningKey,
            ["Kestrel__Endpoints__Grpc__Url"] = $"http://127.0.0.1:{layout.GrpcPort}",
            ["Kestrel__Endpoints__Grpc__Protocols"] = "Http2",
            ["Kestrel__Endpoints__Web__Url"] = $"http://127.0.0.1:{layout.WebPort}",
            ["Kestrel__Endpoints__Web__Protocols"] = "Http1",
            ["Kestrel__Limits__Http2__MaxStreamsPerConnection"] = "1000",
            ["Logging__LogLevel__Default"] = "Warning",
            ["Logging__LogLevel__Pipeline"] = "Information",
        };
        foreach (var (key, value) in Scenarios.EdgeSettings.Concat(extra ?? new Dictionary<string, string>()))
        {
            environment[key] = value;
        }

        var started = System.Diagnostics.Stopwatch.StartNew();
        TimeSpan? answering = null;
        var edge = ServiceProcess.Start("edge", "StreamEdge.dll", "", Path.Combine(layout.RunDirectory, "edge"), environment);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(readyTimeout ?? StartTimeout);
        while (true)
        {
            if (edge.HasExited)
            {
                throw new InvalidOperationException($"edge exited:\n{edge.Tail(40)}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{layout.WebPort}/healthz"), timeout.Token);
                answering ??= started.Elapsed;
                if (response.IsSuccessStatusCode)
                {
                    var replica = ReplicaWork.Read(layout.EdgeReplicaLog) is { Flushes: > 0 } work ? $"; its replica meanwhile: {work.Describe()}" : "";
                    Console.WriteLine($"  edge: answering HTTP {answering.Value.TotalSeconds:F2} s after its start, ready (replica caught up) after {started.Elapsed.TotalSeconds:F2} s, {edge.CpuTime().TotalSeconds:F2} s of CPU{replica}");
                    return edge;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!timeout.IsCancellationRequested)
            {
            }

            await Task.Delay(100, timeout.Token);
        }
    }

    /// <summary>Reads a Prometheus histogram's cumulative buckets (upper bound, count), +Inf last; empty when absent.</summary>
    public static async Task<List<(double UpperBound, double Count)>> ScrapeBucketsAsync(HttpClient http, string url, string histogram, CancellationToken cancellationToken)
    {
        var text = await http.GetStringAsync(new Uri(url), cancellationToken);
        var buckets = new List<(double, double)>();
        foreach (var line in text.Split('\n'))
        {
            // name_bucket{...,le="0.05"} 12 [timestamp]
            if (line.StartsWith(histogram + "_bucket{", StringComparison.Ordinal) && line.IndexOf("le=\"", StringComparison.Ordinal) is var le and >= 0)
            {
                var bound = line[(le + 4)..line.IndexOf('"', le + 4)];
                buckets.Add((bound == "+Inf" ? double.PositiveInfinity : double.Parse(bound, CultureInfo.InvariantCulture), SampleValue(line, histogram.Length)));
            }
        }

        return buckets;
    }

    /// <summary>
    /// After opening <paramref name="subscribers"/> streams at once, waits until the edge has settled the burst
    /// (<c>BurstCompactor</c>: its compaction stops every thread for up to about a second, which would otherwise land
    /// in the measured window). Fewer streams than the edge's default <c>Edge:CompactAfterBurstOf</c> make no burst;
    /// an edge told otherwise is waited for 15 s at most.
    /// </summary>
    public static async Task WaitForBurstSettledAsync(HttpClient http, int webPort, int subscribers, CancellationToken cancellationToken)
    {
        if (subscribers < new Pipeline.StreamEdge.EdgeOptions().CompactAfterBurstOf)
        {
            return;
        }

        var url = $"http://127.0.0.1:{webPort}/metrics";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (await ScrapeSumAsync(http, url, "feed_edge_subscribe_bursts_total", cancellationToken) < 1)
        {
            if (DateTime.UtcNow > deadline)
            {
                Console.WriteLine("  the edge settled no subscribe burst within 15 s; measuring anyway");
                return;
            }

            await Task.Delay(200, cancellationToken);
        }
    }

    /// <summary>Reads the sum of every series of one metric from a Prometheus text scrape (0 when absent).</summary>
    public static async Task<double> ScrapeSumAsync(HttpClient http, string url, string metric, CancellationToken cancellationToken) =>
        Sum(await http.GetStringAsync(new Uri(url), cancellationToken), metric);

    /// <summary>Reads one counter or gauge from a Prometheus text scrape (0 when absent).</summary>
    public static async Task<double> ScrapeAsync(HttpClient http, string url, string metric, CancellationToken cancellationToken) =>
        Value(await http.GetStringAsync(new Uri(url), cancellationToken), metric);

    /// <summary>The first sample of <paramref name="metric"/> in a Prometheus text exposition (0 when absent).</summary>
    public static double Value(string text, string metric) => Samples(text, metric).FirstOrDefault();

    /// <summary>
    /// The sum of every series of <paramref name="metric"/> (e.g. a heap size over its generations), or of those whose
    /// labels include <paramref name="label"/> (name="value"); 0 when none.
    /// </summary>
    public static double Sum(string text, string metric, string? label = null) => Samples(text, metric, label).Sum();

    /// <summary>Every sample of <paramref name="metric"/> (its series, with or without labels; with <paramref name="label"/>, those carrying it), in exposition order.</summary>
    private static IEnumerable<double> Samples(string text, string metric, string? label = null) =>
        text.Split('\n')
            .Where(line => line.StartsWith(metric, StringComparison.Ordinal) && line.Length > metric.Length && line[metric.Length] is ' ' or '{')
            .Where(line => label is null || (line.IndexOf('}', metric.Length) is var end and > 0 && line.AsSpan(metric.Length, end - metric.Length).Contains(label, StringComparison.Ordinal)))
            .Select(line => SampleValue(line, metric.Length));

    /// <summary>"name{labels} value [timestamp]" → value; the name is <paramref name="nameLength"/> characters or more.</summary>
    private static double SampleValue(string line, int nameLength)
    {
        var labelsEnd = line.IndexOf('}', nameLength);
        var afterLabels = labelsEnd >= 0 ? line[(labelsEnd + 1)..] : line[nameLength..];
        return double.Parse(afterLabels.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
    }
}
