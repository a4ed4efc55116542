using System.Text.Json;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.Benchmarks;

/// <summary>
/// RocksDB's own account of a store's background work: the flushes and compactions its <c>LOG</c> file records
/// (<c>EVENT_LOG_v1</c> lines), with the bytes compactions read and wrote and the CPU they took. For a given workload
/// these hardly move from run to run, where throughput on a shared machine does, so they show what a storage change
/// did to the work behind it.
/// </summary>
public sealed record ReplicaWork(int Flushes, int Compactions, double CompactionReadMiB, double CompactionWrittenMiB, double CompactionCpuSeconds)
{
    /// <summary>RocksDB's log of the feed replica of an edge whose Edge:StateDir is <paramref name="stateDir"/>.</summary>
    public static string LogIn(string stateDir) => Path.Combine(FeedReplica.DirectoryIn(stateDir), "LOG");

    /// <summary>
    /// The work that finished between <paramref name="from"/> and <paramref name="to"/> (UTC; null: unbounded) in
    /// the log at <paramref name="logPath"/>; null when there is no log (the store was never opened there).
    /// </summary>
    public static ReplicaWork? Read(string logPath, DateTime? from = null, DateTime? to = null)
    {
        if (!File.Exists(logPath))
        {
            return null;
        }

        long Micros(DateTime? at, long otherwise) => at is { } t ? (t - DateTime.UnixEpoch).Ticks / 10 : otherwise;
        var (fromMicros, toMicros) = (Micros(from, long.MinValue), Micros(to, long.MaxValue));

        // RocksDB keeps the log open and appends to it as it works.
        using var file = new FileStream(logPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(file);
        var read = new Dictionary<long, long>();
        var (flushes, compactions, readBytes, writtenBytes, cpuMicros) = (0, 0, 0L, 0L, 0L);
        while (reader.ReadLine() is { } line)
        {
            var start = line.IndexOf("EVENT_LOG_v1 {", StringComparison.Ordinal);
            if (start < 0 || !line.EndsWith('}'))
            {
                continue; // not an event, or the one RocksDB is writing right now
            }

            using var json = JsonDocument.Parse(line.AsMemory(start + "EVENT_LOG_v1 ".Length));
            var e = json.RootElement;
            var job = e.TryGetProperty("job", out var id) ? id.GetInt64() : -1;
            var at = e.GetProperty("time_micros").GetInt64();
            switch (e.GetProperty("event").GetString())
            {
                case "compaction_started":
                    read[job] = e.TryGetProperty("input_data_size", out var input) ? input.GetInt64() : 0;
                    break;
                case "compaction_finished" when at >= fromMicros && at <= toMicros:
                    compactions++;
                    readBytes += read.GetValueOrDefault(job);
                    writtenBytes += e.TryGetProperty("total_output_size", out var output) ? output.GetInt64() : 0;
                    cpuMicros += e.TryGetProperty("compaction_time_cpu_micros", out var cpu) ? cpu.GetInt64() : 0;
                    break;
                case "flush_finished" when at >= fromMicros && at <= toMicros:
                    flushes++;
                    break;
            }
        }

        return new(flushes, compactions, readBytes / 1024.0 / 1024.0, writtenBytes / 1024.0 / 1024.0, cpuMicros / 1e6);
    }

    public string Describe() => FormattableString.Invariant(
        $"{Flushes} flushes, {Compactions} compactions read {CompactionReadMiB:F0} MiB and wrote {CompactionWrittenMiB:F0} MiB on {CompactionCpuSeconds:F1} s of CPU");
}
