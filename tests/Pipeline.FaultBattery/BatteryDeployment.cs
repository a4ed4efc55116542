using System.Diagnostics;
using System.Globalization;
using Pipeline.Benchmarks;

namespace Pipeline.FaultBattery;

/// <summary>One processor process of a scenario: started, killed and restarted by the battery, watched for crashes.</summary>
public sealed class ProcessorNode(string name, PipelineLayout layout, IReadOnlyDictionary<string, string> settings)
{
    private ServiceProcess? _process;

    public string Name => name;

    public ServiceProcess Process => _process ?? throw new InvalidOperationException($"{name} is not running");

    public string StateDir => settings["Processor__StateDir"];

    public string MetricsUrl => settings["Processor__MetricsUrl"];

    /// <summary>SIGKILL (a crash) or SIGTERM (a graceful stop, as an orchestrator's).</summary>
    public Task BringDownAsync(bool kill) => kill ? KillAsync() : StopAsync();

    /// <summary>Exits the battery did not cause (each is restarted, as an orchestrator would, and reported).</summary>
    public int UnexpectedExits { get; private set; }

    /// <summary>Exits the processor chose (its stall watchdog, or tasks closed dirty under exactly-once): restarted too, and reported.</summary>
    public int SelfRestarts { get; private set; }

    public bool IsRunning => _process is { HasExited: false };

    public async Task<TimeSpan> StartAsync(CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        _process = await PipelineProcesses.StartProcessorAsync(layout, cancellationToken, settings);
        return stopwatch.Elapsed;
    }

    public async Task KillAsync()
    {
        // Detach first: the crash watcher must not mistake this kill for a crash and restart the process itself.
        if (Interlocked.Exchange(ref _process, null) is { } process)
        {
            await process.KillAsync();
            KeepLog(process);
            await process.DisposeAsync();
        }
    }

    /// <summary>For diagnosis: with FAULT_BATTERY_DUMP=dir, each process's retained output is appended to a file there.</summary>
    private void KeepLog(ServiceProcess process)
    {
        if (Environment.GetEnvironmentVariable("FAULT_BATTERY_DUMP") is { Length: > 0 } dump)
        {
            Directory.CreateDirectory(dump);
            File.AppendAllText(Path.Combine(dump, $"{Path.GetFileName(layout.RunDirectory)}.{name}.log"), $"==== {DateTime.UtcNow:O} \n{process.Tail(5000)}\n");
        }
    }

    /// <summary>Restarts the process when it exited on its own; returns whether it had.</summary>
    public async Task<bool> ReviveAsync(CancellationToken cancellationToken)
    {
        if (_process is not { HasExited: true })
        {
            return false;
        }

        if (_process.OutputContains("(Processor:StallTimeout)") || _process.OutputContains("closed its tasks dirty"))
        {
            // The processor stopped itself to be restarted by its supervisor: its liveness watchdog, or a stream
            // thread that closed its tasks dirty (the restart rebuilds the stores).
            SelfRestarts++;
        }
        else
        {
            Console.WriteLine($"  {name} exited unexpectedly; last output:\n{_process.Tail(15)}");
            UnexpectedExits++;
        }

        KeepLog(_process);
        await _process.DisposeAsync();
        await StartAsync(cancellationToken);
        return true;
    }

    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _process, null) is { } process)
        {
            await process.StopAsync(TimeSpan.FromSeconds(10));
            KeepLog(process);
            await process.DisposeAsync();
        }
    }
}

/// <summary>
/// A scenario's deployment: the embedded broker (with its fault-control channel), one or more processors, an
/// optional edge, the traffic and the independent feed.updates reader.
/// </summary>
public sealed class BatteryDeployment : IAsyncDisposable
{
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(int.TryParse(Environment.GetEnvironmentVariable("FAULT_BATTERY_SETTLE_SECONDS"), out var seconds) ? seconds : 300);
    private static readonly TimeSpan QuietPeriod = TimeSpan.FromSeconds(5);

    private BatteryDeployment(PipelineLayout layout, ServiceProcess broker, BatteryWorkload workload, UpdateLog log)
    {
        Layout = layout;
        Broker = broker;
        Workload = workload;
        Log = log;
    }

    public PipelineLayout Layout { get; }

    public ServiceProcess Broker { get; }

    public BatteryWorkload Workload { get; }

    public UpdateLog Log { get; }

    public List<ProcessorNode> Processors { get; } = [];

    public ServiceProcess? Edge { get; private set; }

    public Dictionary<string, string> EdgeSettings { get; } = new()
    {
        ["Edge__FeedSize"] = "100000",
        ["Edge__SubscriberBufferSize"] = "1024",
        ["Edge__HeartbeatInterval"] = "00:00:01",
    };

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(5) };

    public string GrpcAddress => $"http://127.0.0.1:{Layout.GrpcPort}";

    public static async Task<BatteryDeployment> StartAsync(string scenario, int partitions, WorkloadShape shape, CancellationToken cancellationToken)
    {
        var layout = PipelineLayout.Create(partitions);
        Console.WriteLine($"[{scenario}] run directory {layout.RunDirectory}");
        var broker = await PipelineProcesses.StartBrokerAsync(layout, cancellationToken, faultControl: true);
        return new BatteryDeployment(layout, broker, new BatteryWorkload(layout.BootstrapServers, shape, seed: scenario.GetHashCode(StringComparison.Ordinal)), new UpdateLog(layout.BootstrapServers, partitions));
    }

    /// <summary>Adds and starts a processor instance with its own state directory and metrics port.</summary>
    public async Task<ProcessorNode> AddProcessorAsync(string guarantee, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? extra = null)
    {
        var index = Processors.Count;
        var settings = new Dictionary<string, string>
        {
            ["Processor__Guarantee"] = guarantee,
            ["Processor__FeedSize"] = "100000",
            ["Processor__StateDir"] = Path.Combine(Layout.RunDirectory, $"processor-{index}-state"),
            ["Processor__MetricsUrl"] = $"http://127.0.0.1:{(index == 0 ? Layout.ProcessorMetricsPort : PipelineLayout.FreePort())}/metrics/",
            // Scenarios are short: a stalled processor should restart within them. The watchdog needs three commit
            // intervals, so both guarantees commit every 100 ms here (at-least-once defaults to 30 s).
            ["Processor__StallTimeout"] = "00:00:20",
            ["Processor__CommitIntervalMs"] = "100",
            ["Logging__LogLevel__Pipeline.Processor.ProgressWatchdog"] = "Debug",
            // One line per entry, so that a failure report can fold the watchdog's periodic lines.
            ["Logging__Console__FormatterOptions__SingleLine"] = "true",
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var node = new ProcessorNode($"processor-{index}", Layout, settings);
        await node.StartAsync(cancellationToken);
        Processors.Add(node);
        return node;
    }

    public async Task<TimeSpan> StartEdgeAsync(CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        Edge = await PipelineProcesses.StartEdgeAsync(Layout, cancellationToken, EdgeSettings);
        return stopwatch.Elapsed;
    }

    public async Task StopEdgeAsync()
    {
        if (Edge is not null)
        {
            await Edge.StopAsync(TimeSpan.FromSeconds(30));
            await Edge.DisposeAsync();
            Edge = null;
        }
    }

    /// <summary>Seeds the follow graph and the quiet authors' posts, and waits until all of it is in the feeds.</summary>
    public async Task SeedAsync(CancellationToken cancellationToken)
    {
        var follows = Workload.ProduceSeedFollows();
        var deadline = DateTime.UtcNow + SettleTimeout;
        while (await SumProcessorMetricAsync("feed_processor_follows_in_total", cancellationToken) < follows)
        {
            await ReviveAsync(cancellationToken);
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the processors did not apply {follows} follows within {SettleTimeout}");
            }

            await Task.Delay(100, cancellationToken);
        }

        Workload.ProduceQuietPosts();
        await SettleAsync(cancellationToken);
    }

    /// <summary>
    /// Produces the faulted traffic at <paramref name="eventsPerSecond"/> until <paramref name="until"/> completes
    /// (and at least <paramref name="minEvents"/>), reviving any processor that died on its own.
    /// </summary>
    public async Task FlowAsync(double eventsPerSecond, Task until, CancellationToken cancellationToken, long minEvents = 0, Action? perEvent = null)
    {
        var started = Stopwatch.StartNew();
        long sent = 0;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(20));
        while ((!until.IsCompleted || sent < minEvents) && await timer.WaitForNextTickAsync(cancellationToken))
        {
            var due = (long)(started.Elapsed.TotalSeconds * eventsPerSecond);
            for (; sent < due; sent++)
            {
                Workload.ProduceNext();
                perEvent?.Invoke();
            }

            await ReviveAsync(cancellationToken);
        }

        Workload.Flush();
        await until;
    }

    /// <summary>Posts a marker every user follows and waits until every user has it: all input before it is applied.</summary>
    public async Task<TimeSpan> SettleAsync(CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        var marker = Workload.ProduceMarker();
        var deadline = DateTime.UtcNow + SettleTimeout;
        var pending = Workload.Users.ToList();
        while (pending.Count > 0)
        {
            pending.RemoveAll(user => Log.HasAdded(user, marker));
            if (DateTime.UtcNow > deadline)
            {
                var tails = string.Join("\n", Processors.Where(p => p.IsRunning).Select(p => $"--- {p.Name}:\n{p.Process.Tail(40, periodic: "Stall watchdog:")}"));
                var postsIn = await SumProcessorMetricAsync("feed_processor_posts_in_total", cancellationToken);
                var updatesOut = await SumProcessorMetricAsync("feed_processor_feed_updates_out_total", cancellationToken);
                throw new TimeoutException($"{pending.Count} users never received {marker} within {SettleTimeout}: the pipeline lost input or stalled (processors: {postsIn} posts in, {updatesOut} updates out; the battery read {Log.Count} updates)\n{tails}");
            }

            await ReviveAsync(cancellationToken);
            await Task.Delay(100, cancellationToken);
        }

        // The marker travels one partition of each stage; other partitions may still be working through what
        // came before it (a restarted processor re-reads them). Settled means: the marker is everywhere, and
        // feed.updates has not grown for a while.
        var count = Log.Count;
        for (var quiet = Stopwatch.StartNew(); quiet.Elapsed < QuietPeriod;)
        {
            await Task.Delay(250, cancellationToken);
            if (Log.Count != count)
            {
                count = Log.Count;
                quiet.Restart();
            }
        }

        return stopwatch.Elapsed - QuietPeriod;
    }

    public Verdict VerifyFeeds()
    {
        Workload.Flush();
        if (Workload.ProduceFailures > 0)
        {
            throw new InvalidOperationException($"{Workload.ProduceFailures} input records were never acknowledged by the broker; the model cannot be compared");
        }

        var held = BatteryWorkload.InputRecords(Layout.BootstrapServers);
        if (held != Workload.Acknowledged)
        {
            throw new InvalidOperationException($"the broker acknowledged {Workload.Acknowledged} input records but its input topics hold {held}; the model cannot be compared");
        }

        var updates = Log.Snapshot();

        // For diagnosis: FAULT_BATTERY_DUMP=dir writes every update the scenario saw, in topic order.
        if (Environment.GetEnvironmentVariable("FAULT_BATTERY_DUMP") is { Length: > 0 } dump)
        {
            Directory.CreateDirectory(dump);
            File.WriteAllLines(
                Path.Combine(dump, Path.GetFileName(Layout.RunDirectory) + ".updates.tsv"),
                updates.OrderBy(u => u.Partition).ThenBy(u => u.Offset).Select(u => $"{u.Partition}\t{u.Offset}\t{u.User}\t{u.Kind}\t{u.PostId}"));
        }

        return Verifier.FeedsAgainstModel(Workload.Model.Feeds, updates);
    }

    public int UnexpectedExits => Processors.Sum(p => p.UnexpectedExits);

    public int SelfRestarts => Processors.Sum(p => p.SelfRestarts);

    public async Task<double> SumProcessorMetricAsync(string metric, CancellationToken cancellationToken)
    {
        double sum = 0;
        foreach (var processor in Processors.Where(p => p.IsRunning))
        {
            try
            {
                sum += await PipelineProcesses.ScrapeAsync(Http, processor.MetricsUrl, metric, cancellationToken);
            }
            catch (HttpRequestException)
            {
                // Not serving metrics yet (starting) or any more (killed).
            }
        }

        return sum;
    }

    public async Task<double> EdgeMetricAsync(string metric, CancellationToken cancellationToken) =>
        await PipelineProcesses.ScrapeAsync(Http, $"http://127.0.0.1:{Layout.WebPort}/metrics", metric, cancellationToken);

    /// <summary>Sends a fault-injection command to the broker and waits for its acknowledgement.</summary>
    public async Task FaultAsync(string command, CancellationToken cancellationToken)
    {
        var acknowledged = Broker.CountOutput($"fault ok: {command}");
        await Broker.SendAsync(command);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        while (Broker.CountOutput($"fault ok: {command}") <= acknowledged)
        {
            if (Broker.OutputContains($"fault refused: {command}"))
            {
                throw new InvalidOperationException($"the broker refused '{command}':\n{Broker.Tail(5)}");
            }

            await Task.Delay(20, timeout.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopEdgeAsync();
        foreach (var processor in Processors)
        {
            await processor.StopAsync();
        }

        Log.Dispose();
        Workload.Dispose();
        await Broker.DisposeAsync();
        Http.Dispose();
        try
        {
            Directory.Delete(Layout.RunDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task ReviveAsync(CancellationToken cancellationToken)
    {
        foreach (var processor in Processors)
        {
            await processor.ReviveAsync(cancellationToken);
        }
    }
}

internal static class Format
{
    public static string Seconds(TimeSpan time) => time.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";
}
