using System.Text;
using Pipeline.Benchmarks;
using RocksDbSharp;

namespace Pipeline.IntegrationTests.Benchmarks;

public sealed class ReplicaWorkTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "replica-work-tests", Guid.NewGuid().ToString("N"));

    /// <summary>
    /// A real RocksDB made to flush and compact (small memtables, L0 compacted at two files, then a manual compaction)
    /// logs that work; the harness reads it back whole, and nothing of it in a window that opens after it.
    /// </summary>
    [Fact]
    public void Read_SumsTheFlushesAndCompactionsTheStoreLogged_InsideTheWindowOnly()
    {
        Directory.CreateDirectory(_directory);
        var opened = DateTime.UtcNow;
        var options = new DbOptions().SetCreateIfMissing(true).SetWriteBufferSize(256 * 1024).SetLevel0FileNumCompactionTrigger(2);
        var flushes = 6;
        using (var db = RocksDb.Open(options, _directory))
        {
            var value = new byte[1024];
            for (var flush = 0; flush < flushes; flush++)
            {
                for (var i = 0; i < 200; i++)
                {
                    Random.Shared.NextBytes(value);
                    db.Put(Encoding.UTF8.GetBytes($"k/{i:D6}"), value);
                }

                db.Flush(new FlushOptions().SetWaitForFlush(true));
            }

            db.CompactRange(Encoding.UTF8.GetBytes("k/"), Encoding.UTF8.GetBytes("k0"));
        }

        var closed = DateTime.UtcNow;
        var log = Path.Combine(_directory, "LOG");

        var whole = ReplicaWork.Read(log);
        Assert.NotNull(whole);
        Assert.True(whole.Flushes >= flushes, $"{whole.Flushes} flushes logged, {flushes} forced");
        Assert.True(whole.Compactions >= 1, "the manual compaction was not read");
        // Every flush rewrote the same 200 keys: the compactions read several copies and wrote about one.
        Assert.InRange(whole.CompactionReadMiB, 0.2, 10);
        Assert.InRange(whole.CompactionWrittenMiB, 0.1, whole.CompactionReadMiB);
        Assert.Equal(whole, ReplicaWork.Read(log, opened.AddSeconds(-1), closed.AddSeconds(1)));

        var after = ReplicaWork.Read(log, closed.AddSeconds(1));
        Assert.Equal(new ReplicaWork(0, 0, 0, 0, 0), after);
        Assert.Null(ReplicaWork.Read(Path.Combine(_directory, "no-such-log")));
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
