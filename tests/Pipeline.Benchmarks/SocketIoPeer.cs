using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Pipeline.Benchmarks;

/// <summary>
/// The Socket.IO peer in <c>tests/peer-socketio</c>: a <c>socket.io</c> server fed from feed.updates by kafkajs
/// (<c>server.js</c>) and a <c>socket.io-client</c> subscriber fleet (<c>client.js</c>), each a Node process.
/// </summary>
public sealed class SocketIoPeer
{
    private static readonly JsonSerializerOptions SummaryJson = new(JsonSerializerDefaults.Web);

    private SocketIoPeer(string directory) => PeerDirectory = directory;

    /// <summary>The tests/peer-socketio directory.</summary>
    public string PeerDirectory { get; }

    /// <summary>
    /// Finds tests/peer-socketio above the harness binary (or at <paramref name="directory"/>), checks that Node ≥ 20
    /// is on the PATH, and runs <c>npm ci</c> there when node_modules is missing.
    /// </summary>
    public static async Task<SocketIoPeer> PrepareAsync(string? directory, CancellationToken cancellationToken)
    {
        directory ??= Locate() ?? throw new InvalidOperationException(
            "tests/peer-socketio not found above the harness binary; pass --peer-dir <path to tests/peer-socketio>");
        if (!File.Exists(Path.Combine(directory, "package-lock.json")))
        {
            throw new InvalidOperationException($"{directory} has no package-lock.json: is --peer-dir the tests/peer-socketio directory?");
        }

        var (nodeExit, nodeVersion) = await RunAsync("node", "--version", directory, cancellationToken);
        if (nodeExit != 0 || !int.TryParse(nodeVersion.Trim().TrimStart('v').Split('.')[0], CultureInfo.InvariantCulture, out var major) || major < 20)
        {
            throw new InvalidOperationException($"the Socket.IO peer needs Node.js 20 or later on the PATH (node --version: '{nodeVersion.Trim()}')");
        }

        if (!Directory.Exists(Path.Combine(directory, "node_modules")))
        {
            Console.WriteLine($"  peer: node_modules missing, running npm ci in {directory}");
            var (npmExit, npmOutput) = await RunAsync("npm", "ci --no-audit --no-fund", directory, cancellationToken);
            if (npmExit != 0)
            {
                throw new InvalidOperationException($"npm ci failed in {directory} (run it there yourself: cd {directory} && npm ci):\n{npmOutput}");
            }
        }

        return new SocketIoPeer(directory);
    }

    private static readonly Dictionary<string, string> NodeEnvironment = new() { ["KAFKAJS_NO_PARTITIONER_WARNING"] = "1" };

    /// <summary>Starts server.js on a free loopback port and waits for its "peer ready" line.</summary>
    public async Task<(ServiceProcess Server, int Port)> StartServerAsync(string bootstrapServers, string runDirectory, CancellationToken cancellationToken)
    {
        var port = PipelineLayout.FreePort();
        var server = ServiceProcess.StartProgram(
            "peer-server",
            "node",
            $"\"{Path.Combine(PeerDirectory, "server.js")}\" --bootstrap {bootstrapServers} --port {port.ToString(CultureInfo.InvariantCulture)}",
            Path.Combine(runDirectory, "peer-server"),
            NodeEnvironment);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        await server.WaitForOutputAsync("peer ready", timeout.Token);
        return (server, port);
    }

    /// <summary>
    /// Starts client.js with one connection per user u0…u(<paramref name="users"/>−1) and waits until all are live.
    /// <paramref name="authors"/> and <paramref name="postsBefore"/> give each author's next sequence number.
    /// </summary>
    public Task<ServiceProcess> StartFleetAsync(int port, int users, int authors, long postsBefore, TimeSpan duration, TimeSpan drain, string runDirectory, CancellationToken cancellationToken) =>
        StartNodeFleetAsync("peer-fleet", "client.js", $"--url http://127.0.0.1:{port}", users, authors, postsBefore, duration, drain, runDirectory, cancellationToken);

    /// <summary>
    /// Starts grpc-client.js against our edge — a gRPC subscriber fleet on the same Node runtime as the peer's, so
    /// that the two servers are compared through like clients — and waits until all subscribers are live.
    /// </summary>
    public Task<ServiceProcess> StartGrpcFleetAsync(int grpcPort, string token, int perConnection, int users, int authors, long postsBefore, TimeSpan duration, TimeSpan drain, string runDirectory, CancellationToken cancellationToken) =>
        StartNodeFleetAsync(
            "node-grpc-fleet",
            "grpc-client.js",
            $"--address 127.0.0.1:{grpcPort} --per-connection {perConnection}",
            users, authors, postsBefore, duration, drain, runDirectory, cancellationToken,
            // In its environment, not on its command line, where any user's ps would read it.
            new Dictionary<string, string>(NodeEnvironment) { ["FEED_BEARER_TOKEN"] = token });

    private async Task<ServiceProcess> StartNodeFleetAsync(string name, string script, FormattableString transportArguments, int users, int authors, long postsBefore, TimeSpan duration, TimeSpan drain, string runDirectory, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? environment = null)
    {
        var arguments = string.Create(
            CultureInfo.InvariantCulture,
            $"\"{Path.Combine(PeerDirectory, script)}\" {transportArguments.ToString(CultureInfo.InvariantCulture)} --users {users} --authors {authors} --posts-before {postsBefore} --seconds {duration.TotalSeconds} --drain-seconds {drain.TotalSeconds}");
        var fleet = ServiceProcess.StartProgram(name, "node", arguments, Path.Combine(runDirectory, name), environment ?? NodeEnvironment, control: true);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        await fleet.WaitForOutputAsync("fleet live", timeout.Token);
        return fleet;
    }

    /// <summary>Waits for a Node fleet to end by itself and reads the JSON summary it prints last.</summary>
    public static async Task<PeerFleetSummary> ReadSummaryAsync(ServiceProcess fleet, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var exit = await fleet.WaitForExitAsync(deadline.Token);
        var line = fleet.LastLineStartingWith("{\"summary\"");
        if (exit != 0 || line is null)
        {
            throw new InvalidOperationException($"the Node fleet {fleet.Name} exited with {exit} and no summary:\n{fleet.Tail(40)}");
        }

        return JsonSerializer.Deserialize<PeerFleetSummary>(line, SummaryJson) ?? throw new InvalidOperationException($"unreadable summary: {line}");
    }

    private static string? Locate()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            foreach (var candidate in new[] { Path.Combine(dir.FullName, "peer-socketio"), Path.Combine(dir.FullName, "tests", "peer-socketio") })
            {
                if (File.Exists(Path.Combine(candidate, "server.js")))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string fileName, string arguments, string workingDirectory, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(fileName, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        try
        {
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            return (process.ExitCode, await stdout + await stderr);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (-1, $"{fileName} not found: {ex.Message}");
        }
    }
}

/// <summary>What a Node fleet (client.js, grpc-client.js) prints when it ends (latencies in ms, percentiles in µs as in <see cref="LatencyResult"/>).</summary>
public sealed record PeerFleetSummary(
    string Reason, int Connections, long Reconnects, long ConnectErrors,
    long Deliveries, long Expected, long Gaps, long Duplicates, long Malformed,
    double StartUnixMs, double FirstDeliveryUnixMs, double LastDeliveryUnixMs, double DeliveriesPerSecond,
    double P50Ms, double P90Ms, double P99Ms, double P999Ms, double MaxMs, long[] HistogramPercentilesUs,
    double CoresUsed, string Stack, string LastError);
