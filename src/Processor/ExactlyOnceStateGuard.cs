namespace Pipeline.Processor;

/// <summary>
/// Exactly-once makes the output and the changelogs transactional, but the local RocksDB stores are written as the
/// records are processed, before the transaction commits. After a crash they can hold writes of a transaction the
/// broker aborted — a post marked as seen whose fan-out never committed, which the processor would then drop as a
/// duplicate when it re-reads the input. Kafka Streams therefore wipes a task's stores after an unclean shutdown
/// under exactly-once; Streamiz does not (it restores the changelog on top of what is on disk), so the processor
/// does it: a marker file records a clean shutdown, and a start without it wipes the application's state
/// directory, which Streamiz then rebuilds from the changelogs.
/// </summary>
public sealed partial class ExactlyOnceStateGuard(ProcessorOptions options, ILogger logger)
{
    private const string MarkerName = ".clean-shutdown";

    private string ApplicationStateDir => Path.Combine(options.StateDir, options.ApplicationId);

    private string Marker => Path.Combine(options.StateDir, $"{options.ApplicationId}{MarkerName}");

    /// <summary>Before the stream starts: keeps the stores after a clean shutdown, wipes them otherwise; either way removes the marker.</summary>
    public void BeforeStart()
    {
        if (options.Guarantee != DeliveryGuarantee.ExactlyOnce)
        {
            return;
        }

        var clean = File.Exists(Marker);
        if (clean)
        {
            File.Delete(Marker);
        }

        if (!clean && Directory.Exists(ApplicationStateDir) && Directory.EnumerateFileSystemEntries(ApplicationStateDir).Any())
        {
            LogWiping(logger, ApplicationStateDir);
            Directory.Delete(ApplicationStateDir, recursive: true);
        }
    }

    /// <summary>After the stream closed cleanly (committed, stores flushed and checkpointed): the stores may be kept.</summary>
    public void AfterCleanStop()
    {
        if (options.Guarantee == DeliveryGuarantee.ExactlyOnce)
        {
            Directory.CreateDirectory(options.StateDir);
            File.WriteAllText(Marker, DateTimeOffset.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The processor did not shut down cleanly last time; under exactly-once its local stores may hold uncommitted writes, so {StateDir} is wiped and restored from the changelog topics (this start takes longer)")]
    private static partial void LogWiping(ILogger logger, string stateDir);
}
