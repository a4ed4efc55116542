using System.Runtime.InteropServices;

namespace Pipeline.Kafka.Hosting;

/// <summary>
/// For a service started by another process that owns its life (a test host, the load harness, the fault battery):
/// with <c>PIPELINE_EXIT_WITH_PARENT=1</c> in its environment, the service stops as if told to (SIGTERM, so its
/// usual graceful shutdown runs) once the process that started it has exited. Without it, a launcher killed with
/// SIGKILL leaves its brokers, processors and edges running. Off unless asked for: a deployed service's parent is
/// its supervisor, which stops it itself.
/// </summary>
public static partial class ParentProcessWatch
{
    public const string Variable = "PIPELINE_EXIT_WITH_PARENT";

    private const int SigTerm = 15;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);

    /// <summary>Starts the watch when <see cref="Variable"/> is "1" and the OS is Linux or macOS; false otherwise.</summary>
    public static bool StartIfRequested()
    {
        if (Environment.GetEnvironmentVariable(Variable) != "1" || !(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()))
        {
            return false;
        }

        var parent = GetParentProcessId();
        var watch = new Thread(() => Watch(parent)) { IsBackground = true, Name = "parent-process-watch" };
        watch.Start();
        return true;
    }

    /// <summary>
    /// A process whose parent exits is re-parented (to init or a subreaper), so its parent id changes; polling that
    /// needs no handle on the parent and cannot mistake a new process that reused the parent's id for it.
    /// </summary>
    private static void Watch(int parent)
    {
        while (GetParentProcessId() == parent)
        {
            Thread.Sleep(Interval);
        }

        Console.Error.WriteLine($"The process that started this one ({parent}) has exited; stopping ({Variable}=1).");
        _ = Kill(Environment.ProcessId, SigTerm);
    }

    [LibraryImport("libc", EntryPoint = "getppid")]
    private static partial int GetParentProcessId();

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
