using System.Diagnostics;
using System.Globalization;
using Feed.V1;
using Microsoft.Extensions.Options;
using Pipeline.StreamEdge;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.Benchmarks;

/// <param name="FeedEntries">Entries in the first user's feed after the run: the feed cap once the prefill reaches it.</param>
/// <param name="Threads">Applying threads, each with its own replica writer and a share of the partitions, as the edge's Edge:ApplyThreads.</param>
/// <param name="MicrosPerApply">Wall time per apply on an applying thread, as the edge's apply threads spend it.</param>
/// <param name="AppliesPerSecond">Applies per second of wall time, all threads together.</param>
/// <param name="CpuMicrosPerApply">This process's CPU per apply: the applying thread and RocksDB's flush and compaction threads.</param>
public sealed record ReplicaResult(
    int Users, int Prefill, int FeedSize, int ResumeWindow, int Threads, long Applies, int FeedEntries,
    double PrefillSeconds, double PrefillCpuSeconds, ReplicaWork? PrefillWork,
    double MicrosPerApply, double AppliesPerSecond, double CpuMicrosPerApply, ReplicaWork? Work, double TableFilesMiB);

/// <summary>
/// The edge's feed replica alone, in this process, with no broker, network or subscribers: every user's feed filled
/// with <c>prefill</c> updates (past both caps when it is at least the resume window), then <c>applies</c> more
/// spread over the users, staged and committed in batches of up to 128 (one update per user), as the edge's consumer
/// applies what it fetched, on <c>threads</c> threads that share the partitions as the edge's apply threads do. It
/// shows what one apply costs an apply thread at the caps, which bounds an edge's deliveries/s, and what RocksDB's
/// background work adds to it.
/// </summary>
public static class ReplicaScenario
{
    private const int Batch = 128;

    /// <summary>Users per partition, like a topic whose every partition holds many feeds.</summary>
    private const int UsersPerPartition = 100;

    public static ReplicaResult Run(int users, int prefill, long applies, int? feedSize = null, int? resumeWindow = null, int threads = 1)
    {
        var options = new EdgeOptions
        {
            StateDir = Path.Combine(Path.GetTempPath(), "feed-bench", "replica-" + Guid.NewGuid().ToString("N")[..8]),
        };
        options.FeedSize = feedSize ?? Setting("Edge__FeedSize") ?? options.FeedSize;
        options.ResumeWindow = resumeWindow ?? Setting("Edge__ResumeWindow") ?? options.ResumeWindow;
        var log = ReplicaWork.LogIn(options.StateDir);
        var names = Enumerable.Range(0, users).Select(FeedWorkload.User).ToArray();
        var process = Process.GetCurrentProcess();
        var partitions = (users + UsersPerPartition - 1) / UsersPerPartition;
        threads = Math.Clamp(threads, 1, partitions);
        Console.WriteLine($"replica: {users} feeds (caps: {options.FeedSize} entries, {options.ResumeWindow} logged updates) in {partitions} partitions on {threads} applying threads, {prefill} updates each first, then {applies:N0} more; state in {options.StateDir}");
        try
        {
            using var replica = new FeedReplica(Options.Create(options));
            var writers = Enumerable.Range(0, threads).Select(_ => replica.CreateWriter()).ToArray();
            long next = 0;

            // The next count updates of the round-robin sequence (offset i goes to user i mod users), each thread
            // applying those of its partitions in order; the offset doubles as the record's offset in its partition.
            void Apply(long count)
            {
                var (from, to) = (next, next + count);
                next = to;
                var workers = Enumerable.Range(0, threads).Select(thread => new Thread(() => ApplyShare(writers[thread], thread, from, to))).ToList();
                workers.ForEach(w => w.Start());
                workers.ForEach(w => w.Join());
            }

            void ApplyShare(FeedReplica.Writer writer, int thread, long from, long to)
            {
                for (var offset = from; offset < to; offset++)
                {
                    var user = (int)(offset % users);
                    var partition = user / UsersPerPartition;
                    if (partition % threads != thread)
                    {
                        continue;
                    }

                    var sequence = offset / users;
                    var post = new Post
                    {
                        PostId = string.Create(CultureInfo.InvariantCulture, $"r{user}-{sequence}"),
                        AuthorId = FeedWorkload.Author((int)(offset % 997)),
                        Body = string.Create(CultureInfo.InvariantCulture, $"{DateTime.UtcNow.Ticks}|{user}|{sequence}"),
                        CreatedAtMs = 1,
                    };
                    var update = new FeedUpdate { RecipientId = names[user], Kind = FeedUpdateKind.Added, Cause = FeedCause.Live, Post = post, SourceOccurredAtMs = 1 };

                    // A batch holds one update per user, as the consumer's does: a second one commits it first.
                    if (writer.StagedCount == Batch || writer.IsStaged(update.RecipientId))
                    {
                        writer.Commit();
                    }

                    writer.Stage(partition, offset, update, FeedEvents.ToFeedEvent(update));
                }

                writer.Commit();
            }

            var cpu = process.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            Apply((long)users * prefill);
            var (prefillSeconds, prefillCpu) = (clock.Elapsed.TotalSeconds, (process.TotalProcessorTime - cpu).TotalSeconds);
            var prefillWork = ReplicaWork.Read(log);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  prefilled {(long)users * prefill:N0} updates in {prefillSeconds:F1} s on {prefillCpu:F1} s of CPU"));

            var from = DateTime.UtcNow;
            cpu = process.TotalProcessorTime;
            clock.Restart();
            Apply(applies);
            var (seconds, cpuSeconds) = (clock.Elapsed.TotalSeconds, (process.TotalProcessorTime - cpu).TotalSeconds);
            var work = ReplicaWork.Read(log, from);
            var entries = replica.ReadSnapshot(names[0], int.MaxValue).Entries.Count;
            var tableFiles = (replica.Property("rocksdb.total-sst-files-size") ?? 0) / 1024.0 / 1024.0;
            return new ReplicaResult(
                users, prefill, options.FeedSize, options.ResumeWindow, threads, applies, entries,
                prefillSeconds, prefillCpu, prefillWork,
                applies > 0 ? seconds * threads * 1e6 / applies : double.NaN, applies / seconds,
                applies > 0 ? cpuSeconds * 1e6 / applies : double.NaN, work, tableFiles);
        }
        finally
        {
            Directory.Delete(options.StateDir, recursive: true);
        }
    }

    private static int? Setting(string key) =>
        Scenarios.EdgeSettings.TryGetValue(key, out var value) ? int.Parse(value, CultureInfo.InvariantCulture) : null;
}
