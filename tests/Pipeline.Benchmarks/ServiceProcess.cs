using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Pipeline.Benchmarks;

/// <summary>
/// One deployable run as its own OS process (as in production), with its output kept for diagnosis and its CPU
/// time and memory read from /proc.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private static readonly long TicksPerSecond = 100;

    // Children not yet disposed. If the harness is stopped before it can dispose them (a second Ctrl-C, SIGTERM with
    // 10,000 streams to close, an unhandled exception), they are killed as it exits instead of outliving it: a
    // broker or an edge left behind would hold its ports and the machine's cores.
    private static readonly ConcurrentDictionary<int, Process> Running = new();

    static ServiceProcess() => AppDomain.CurrentDomain.ProcessExit += (_, _) => KillRunning();

    private readonly Process _process;
    private readonly List<string> _output = [];
    private readonly List<long> _outputAt = [];
    private readonly Lock _gate = new();

    private ServiceProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// Starts <c>dotnet {assembly} {arguments}</c> in <paramref name="workingDirectory"/> with extra environment
    /// variables. Workstation GC unless <c>DOTNET_gcServer</c> is given: every process shares the same 2 cores here.
    /// </summary>
    /// <param name="control">Keep stdin open for <see cref="SendAsync"/> (the broker's fault-control channel).</param>
    public static ServiceProcess Start(string name, string assembly, string arguments, string workingDirectory, IReadOnlyDictionary<string, string> environment, bool control = false)
    {
        var settings = new Dictionary<string, string>(environment);
        settings.TryAdd("DOTNET_gcServer", "0");
        var path = AssemblyPath(assembly, PublishedDirectory);
        if (PublishedDirectory is not null)
        {
            Console.WriteLine($"  {name}: {path}");
        }

        return StartProgram(name, "dotnet", $"\"{path}\" {arguments}", workingDirectory, settings, control);
    }

    /// <summary>
    /// Published builds to run the services from (<c>--published</c>), as production deploys them (ReadyToRun,
    /// infra/README.md); null runs the harness's own build output.
    /// </summary>
    public static string? PublishedDirectory { get; set; }

    /// <summary>
    /// <c>{published}/{assembly name}/{assembly}</c> when that service was published there, else the harness's own
    /// build output: a run can publish only the services it measures (the embedded broker need not be).
    /// </summary>
    public static string AssemblyPath(string assembly, string? published)
    {
        if (published is not null && Path.Combine(published, Path.GetFileNameWithoutExtension(assembly), assembly) is var candidate && File.Exists(candidate))
        {
            return Path.GetFullPath(candidate);
        }

        return Path.Combine(AppContext.BaseDirectory, assembly);
    }

    /// <summary>
    /// Starts any program (e.g. <c>node</c> for the Socket.IO peer) the same way. Every one is asked to stop by
    /// itself if this process dies without stopping it (a SIGKILLed test host): our services through
    /// <see cref="Pipeline.Kafka.Hosting.ParentProcessWatch"/>, the peer's Node processes through <c>parent-watch.js</c>.
    /// </summary>
    public static ServiceProcess StartProgram(string name, string fileName, string arguments, string workingDirectory, IReadOnlyDictionary<string, string> environment, bool control = false)
    {
        Directory.CreateDirectory(workingDirectory);
        var start = new ProcessStartInfo(fileName, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = control,
            UseShellExecute = false,
        };
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        start.Environment[Pipeline.Kafka.Hosting.ParentProcessWatch.Variable] = "1";
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {name}");
        Running[process.Id] = process;
        var service = new ServiceProcess(name, process);
        process.OutputDataReceived += (_, e) => service.Capture(e.Data);
        process.ErrorDataReceived += (_, e) => service.Capture(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return service;
    }

    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
    {
        await _process.WaitForExitAsync(cancellationToken);
        return _process.ExitCode;
    }

    public string? LastLineStartingWith(string prefix)
    {
        lock (_gate)
        {
            return _output.FindLast(line => line.StartsWith(prefix, StringComparison.Ordinal));
        }
    }

    /// <summary>Waits until a line of output contains <paramref name="text"/>.</summary>
    public async Task WaitForOutputAsync(string text, CancellationToken cancellationToken)
    {
        while (!OutputContains(text))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with {_process.ExitCode}:\n{Tail(40)}");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    /// <summary>When (a <see cref="Stopwatch"/> timestamp) the harness read the first line containing <paramref name="text"/>.</summary>
    public long? FirstOutputAt(string text)
    {
        lock (_gate)
        {
            var index = _output.FindIndex(line => line.Contains(text, StringComparison.Ordinal));
            return index < 0 ? null : _outputAt[index];
        }
    }

    /// <summary>The newest line of output containing <paramref name="text"/>, trimmed.</summary>
    public string? LastLineContaining(string text)
    {
        lock (_gate)
        {
            return _output.FindLast(line => line.Contains(text, StringComparison.Ordinal))?.Trim();
        }
    }

    public bool OutputContains(string text)
    {
        lock (_gate)
        {
            return _output.Exists(line => line.Contains(text, StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// The last <paramref name="lines"/> lines. With <paramref name="periodic"/>, lines containing it (a periodic
    /// status line) count only once — the newest is kept — so that they cannot push everything else out.
    /// </summary>
    public string Tail(int lines, string? periodic = null)
    {
        lock (_gate)
        {
            if (periodic is null)
            {
                return string.Join('\n', _output.TakeLast(lines));
            }

            var newestPeriodic = _output.FindLastIndex(line => line.Contains(periodic, StringComparison.Ordinal));
            return string.Join('\n', _output.Where((line, index) => index == newestPeriodic || !line.Contains(periodic, StringComparison.Ordinal)).TakeLast(lines));
        }
    }

    /// <summary>User + system CPU time consumed so far.</summary>
    public TimeSpan CpuTime()
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{_process.Id}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            return TimeSpan.FromSeconds((double)ticks / TicksPerSecond);
        }
        catch (IOException)
        {
            // The process has gone.
            return TimeSpan.Zero;
        }
    }

    /// <summary>Anonymous resident memory (heap, stacks, native allocations; not mapped files), in bytes.</summary>
    public long PrivateBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    /// <summary>Writes one line to the process's stdin (started with control on).</summary>
    public async Task SendAsync(string line)
    {
        await _process.StandardInput.WriteLineAsync(line);
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>SIGKILL: no shutdown, no flush, as a crashed node or an OOM kill.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    /// <summary>How many output lines contain <paramref name="text"/> (in the retained output).</summary>
    public int CountOutput(string text)
    {
        lock (_gate)
        {
            return _output.Count(line => line.Contains(text, StringComparison.Ordinal));
        }
    }

    /// <summary>SIGTERM, as an orchestrator stops a pod: the host shuts down gracefully.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return;
        }

        using (var term = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await term!.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(10));
        Running.TryRemove(_process.Id, out _);
        _process.Dispose();
    }

    private static void KillRunning()
    {
        foreach (var process in Running.Values)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // It has exited already.
            }
        }
    }

    private void Capture(string? line)
    {
        if (line is null)
        {
            return;
        }

        var at = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            _output.Add(line);
            _outputAt.Add(at);
            if (_output.Count > 5000)
            {
                _output.RemoveRange(0, 1000);
                _outputAt.RemoveRange(0, 1000);
            }
        }
    }
}
