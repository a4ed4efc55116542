using System.Diagnostics;
using System.Globalization;
using Pipeline.Benchmarks;
using Pipeline.Kafka.Hosting;

namespace Pipeline.IntegrationTests.Benchmarks;

/// <summary>
/// A service started with <see cref="ParentProcessWatch.Variable"/>=1 stops once the process that started it is gone
/// (a test host or the harness killed with SIGKILL), and only then. The embedded broker stands in for every service:
/// all three programs start the same watch first thing.
/// </summary>
public sealed class ParentProcessWatchTests
{
    [Fact]
    public async Task ServiceWithTheWatch_StopsWhenItsLauncherExits()
    {
        var service = await LaunchThroughShortLivedShellAsync(watch: true);

        Assert.True(await ExitsWithinAsync(service, TimeSpan.FromSeconds(30)), $"the broker (pid {service}) was still running 30 s after the shell that started it exited");
    }

    [Fact]
    public async Task ServiceWithoutTheWatch_OutlivesItsLauncher()
    {
        var service = await LaunchThroughShortLivedShellAsync(watch: false);
        try
        {
            Assert.False(await ExitsWithinAsync(service, TimeSpan.FromSeconds(5)), $"the broker (pid {service}) exited without the watch: the other test proves nothing");
        }
        finally
        {
            Process.GetProcessById(service).Kill();
        }
    }

    /// <summary>
    /// Starts the broker from <c>sh</c>, which prints its pid and exits a second later: the broker is then an orphan,
    /// as after its launcher was SIGKILLed.
    /// </summary>
    private static async Task<int> LaunchThroughShortLivedShellAsync(bool watch)
    {
        var broker = ServiceProcess.AssemblyPath("DevStack.dll", published: null);
        var environment = watch ? $"{ParentProcessWatch.Variable}=1" : $"-u {ParentProcessWatch.Variable}";
        var command = string.Create(
            CultureInfo.InvariantCulture,
            $"env {environment} dotnet '{broker}' --broker-only --kafka-port {PipelineLayout.FreePort()} --partitions 1 > /dev/null 2>&1 & echo $!; sleep 1");
        var start = new ProcessStartInfo("sh") { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        start.Environment.Remove(ParentProcessWatch.Variable);
        using var shell = Process.Start(start)!;
        var pid = int.Parse((await shell.StandardOutput.ReadLineAsync())!, CultureInfo.InvariantCulture);
        await shell.WaitForExitAsync();

        // Let the service get past its start before the check (its watch starts first thing in Main).
        await Task.Delay(TimeSpan.FromSeconds(3));
        return pid;
    }

    /// <summary>Gone or a zombie (nobody may reap an orphan here) counts as exited.</summary>
    private static async Task<bool> ExitsWithinAsync(int pid, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            var stat = $"/proc/{pid}/stat";
            if (!File.Exists(stat) || ReadState(stat) is null or 'Z' or 'X')
            {
                return true;
            }

            await Task.Delay(200);
        }

        return false;
    }

    private static char? ReadState(string stat)
    {
        try
        {
            // "pid (comm) S ...": the state follows the last ')'.
            var text = File.ReadAllText(stat);
            return text[(text.LastIndexOf(')') + 2)..].FirstOrDefault();
        }
        catch (IOException)
        {
            return null;
        }
    }
}
