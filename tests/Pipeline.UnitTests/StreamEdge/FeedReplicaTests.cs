using Feed.V1;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Pipeline.StreamEdge;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.UnitTests.StreamEdge;

public sealed class FeedReplicaTests : IDisposable
{
    private readonly string _stateDir = Path.Combine(Path.GetTempPath(), "feed-replica-tests", Guid.NewGuid().ToString("N"));
    private FeedReplica _replica;

    public FeedReplicaTests()
    {
        _replica = Open();
    }

    [Fact]
    public void Snapshot_HoldsTheNewestEntriesOldestFirst_AtThePositionApplied()
    {
        for (var offset = 0; offset < 5; offset++)
        {
            Apply(0, offset, Added("ann", $"p{offset}"));
        }

        var snapshot = _replica.ReadSnapshot("ann", 3);

        Assert.Equal(["p2", "p3", "p4"], snapshot.Entries.Select(e => e.Post.PostId));
        Assert.Equal(FeedCursor.At(0, 4), snapshot.Position);
    }

    [Fact]
    public void Removal_DropsTheEntry_AndTheFeedIsCapped()
    {
        for (var offset = 0; offset < 6; offset++)
        {
            Apply(1, offset, Added("ann", $"p{offset}"));
        }

        Apply(1, 6, Removed("ann", "p4"));

        // Feed size is 4: p0 and p1 were pushed out, p4 removed.
        Assert.Equal(["p2", "p3", "p5"], _replica.ReadSnapshot("ann", 100).Entries.Select(e => e.Post.PostId));
    }

    [Fact]
    public void StagedUpdates_AreInvisibleUntilCommitted_ThenWrittenWithTheirCheckpoints()
    {
        var writer = _replica.CreateWriter();
        Apply(0, 3, Added("ann", "a0"));
        writer.Stage(0, 4, Added("bob", "b1"), ToEvent(Added("bob", "b1")));
        writer.Stage(1, 9, Added("cid", "c1"), ToEvent(Added("cid", "c1")));
        writer.Stage(0, 5, Added("ann", "a1"), ToEvent(Added("ann", "a1")));

        Assert.Equal(3, writer.StagedCount);
        Assert.True(writer.IsStaged("bob"));
        Assert.Equal(4, _replica.NextOffset(0));
        Assert.Null(_replica.NextOffset(1));
        Assert.Empty(_replica.ReadSnapshot("bob", 10).Entries);

        writer.Commit();

        Assert.Equal(0, writer.StagedCount);
        Assert.False(writer.IsStaged("bob"));
        Assert.Equal(6, _replica.NextOffset(0));
        Assert.Equal(10, _replica.NextOffset(1));
        Assert.Equal(["a0", "a1"], _replica.ReadSnapshot("ann", 10).Entries.Select(e => e.Post.PostId));
        Assert.Equal(FeedCursor.At(0, 5), _replica.ReadSnapshot("bob", 10).Position);
        Assert.Equal(["c1"], _replica.ReadSnapshot("cid", 10).Entries.Select(e => e.Post.PostId));
    }

    [Fact]
    public void StagingAUserTwice_IsRefused_UntilTheBatchIsCommitted()
    {
        var writer = _replica.CreateWriter();
        writer.Stage(0, 0, Added("ann", "a0"), ToEvent(Added("ann", "a0")));

        Assert.Throws<InvalidOperationException>(() => writer.Stage(0, 1, Added("ann", "a1"), ToEvent(Added("ann", "a1"))));

        writer.Commit();
        writer.Stage(0, 1, Added("ann", "a1"), ToEvent(Added("ann", "a1")));
        writer.Commit();
        Assert.Equal(["a0", "a1"], _replica.ReadSnapshot("ann", 10).Entries.Select(e => e.Post.PostId));
    }

    [Fact]
    public void ABatch_RecordsThePartitionsFirstOffset_NotItsLast()
    {
        var writer = _replica.CreateWriter();
        // The replica starts at offset 5 of partition 0; a cursor right before it (at 4) still resumes.
        writer.Stage(0, 5, Added("ann", "a5"), ToEvent(Added("ann", "a5")));
        writer.Stage(0, 6, Added("bob", "b6"), ToEvent(Added("bob", "b6")));
        writer.Commit();

        Assert.Null(_replica.ReadAfter("ann", FeedCursor.At(0, 4)).ResetReason);
        Assert.NotNull(_replica.ReadAfter("ann", FeedCursor.At(0, 3)).ResetReason);
    }

    [Fact]
    public void UnknownUser_GetsAnEmptySnapshotBeforeEverything()
    {
        Apply(0, 0, Added("ann", "p0"));
        var snapshot = _replica.ReadSnapshot("bob", 10);
        Assert.Empty(snapshot.Entries);
        Assert.Equal(FeedCursor.BeforeFirst, snapshot.Position);
    }

    [Fact]
    public void ReadAfter_ReplaysOnlyThatUsersLaterUpdates_InOrder()
    {
        Apply(2, 10, Added("ann", "a1"));
        Apply(2, 11, Added("bob", "b1"));
        Apply(2, 12, Removed("ann", "a1"));
        Apply(2, 13, Added("ann", "a2"));

        var resume = _replica.ReadAfter("ann", FeedCursor.At(2, 10));

        Assert.Null(resume.ResetReason);
        Assert.Equal([12L, 13L], resume.Updates.Select(u => u.Offset));
        Assert.Equal([FeedEvent.EventOneofCase.Removed, FeedEvent.EventOneofCase.Added], resume.Updates.Select(u => u.Event.EventCase));
    }

    [Fact]
    public void ReadAfter_BeyondWhatWasApplied_IsBehind()
    {
        Apply(0, 3, Added("ann", "p"));
        Assert.True(_replica.ReadAfter("ann", FeedCursor.At(0, 9)).IsBehind);
    }

    [Fact]
    public void ReadAfter_OlderThanTheResumeWindow_IsReset()
    {
        for (var offset = 0; offset < 8; offset++)
        {
            Apply(0, offset, Added("ann", $"p{offset}"));
        }

        // The window is 5 updates: offsets 3..7 are kept, so a cursor at 1 missed offset 2.
        Assert.NotNull(_replica.ReadAfter("ann", FeedCursor.At(0, 1)).ResetReason);
        Assert.Null(_replica.ReadAfter("ann", FeedCursor.At(0, 2)).ResetReason);
        Assert.NotNull(_replica.ReadAfter("ann", FeedCursor.BeforeFirst).ResetReason);
    }

    [Fact]
    public void ReadAfter_ACursorFromBeforeTheReplicaStarted_IsReset()
    {
        // A replica rebuilt from a topic whose early records are gone starts at offset 100.
        Apply(0, 100, Added("ann", "p100"));
        Assert.Contains("rebuilt", _replica.ReadAfter("ann", FeedCursor.At(0, 10)).ResetReason, StringComparison.Ordinal);
    }

    [Fact]
    public void Reopened_ContinuesFromItsCheckpoint_WithTheSameFeeds()
    {
        Apply(0, 0, Added("ann", "p0"));
        Apply(1, 0, Added("bob", "q0"));
        Apply(0, 1, Added("ann", "p1"));

        _replica.Dispose();
        _replica = Open();

        Assert.Equal(2, _replica.NextOffset(0));
        Assert.Equal(1, _replica.NextOffset(1));
        Assert.Null(_replica.NextOffset(2));
        Assert.Equal(["p0", "p1"], _replica.ReadSnapshot("ann", 10).Entries.Select(e => e.Post.PostId));
    }

    /// <summary>
    /// Below the cap, applying an update allocates nothing on the dispatch thread: with 10,000 open streams every
    /// collection stops the edge for tens of milliseconds (BENCHMARKS.md). Added and removed, entries and log.
    /// </summary>
    [Fact]
    public void Apply_BelowTheCaps_AllocatesNothing()
    {
        // Ten users get three posts each, then each loses its first.
        var updates = Enumerable.Range(0, 30).Select(i => Added($"u{i % 10}", $"p{i}")).Concat(Enumerable.Range(0, 10).Select(i => Removed($"u{i}", $"p{i}"))).ToArray();
        var events = updates.Select(ToEvent).ToArray();
        using var wide = new FeedReplica(Options.Create(new EdgeOptions { StateDir = Path.Combine(_stateDir, "wide"), FeedSize = 100, ResumeWindow = 100 }));
        wide.Apply(0, 0, Added("warm", "p"), ToEvent(Added("warm", "p")));
        wide.Apply(1, 0, Added("warm", "q"), ToEvent(Added("warm", "q")));

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < updates.Length; i++)
        {
            wide.Apply(i % 2, i + 1, updates[i], events[i]);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.All(Enumerable.Range(0, 10), u => Assert.Equal([$"p{u + 10}", $"p{u + 20}"], wide.ReadSnapshot($"u{u}", 100).Entries.Select(e => e.Post.PostId)));
    }

    /// <summary>
    /// At the caps, the steady state of an active user, an apply also drops the oldest entry and its held key, and
    /// one apply in every log chunk trims the log: that allocates the trim's iterator and nothing per update.
    /// </summary>
    [Fact]
    public void Apply_AtTheCaps_AllocatesOnlyEachLogTrimsIterator()
    {
        const int window = 64;
        using var full = new FeedReplica(Options.Create(new EdgeOptions { StateDir = Path.Combine(_stateDir, "full"), FeedSize = 8, ResumeWindow = window }));
        var updates = Enumerable.Range(0, 400).Select(i => Added("ann", $"p{i}")).ToArray();
        var events = updates.Select(ToEvent).ToArray();
        for (var i = 0; i < 200; i++)
        {
            full.Apply(0, i, updates[i], events[i]);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 200; i < 400; i++)
        {
            full.Apply(0, i, updates[i], events[i]);
        }

        var trims = 200 / FeedReplica.LogTrimChunk(window);
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, trims * 64);
        Assert.Equal(Enumerable.Range(392, 8).Select(i => $"p{i}"), full.ReadSnapshot("ann", 100).Entries.Select(e => e.Post.PostId));
        Assert.Equal(Enumerable.Range(400 - window, window).Select(i => (long)i), full.ReadAfter("ann", FeedCursor.At(0, 399 - window)).Updates.Select(u => u.Offset));
    }

    /// <summary>The replica reports its RocksDB figures by name, and nothing for a name RocksDB does not know.</summary>
    [Fact]
    public void Property_ReadsTheDatabasesFigures()
    {
        Apply(0, 0, Added("ann", "p"));

        Assert.True(_replica.Property("rocksdb.block-cache-capacity") > 0, "the block cache has a capacity");
        Assert.True(_replica.Property("rocksdb.estimate-num-keys") > 0, "the replica holds keys");
        Assert.Null(_replica.Property("rocksdb.no-such-property"));
    }

    /// <summary>The block cache is the size Edge:ReplicaBlockCacheMb gives, not RocksDB's default (32 MiB).</summary>
    [Fact]
    public void TheBlockCache_IsTheConfiguredSize()
    {
        using var sized = new FeedReplica(Options.Create(new EdgeOptions { StateDir = Path.Combine(_stateDir, "sized"), ReplicaBlockCacheMb = 48 }));

        Assert.Equal(48L << 20, sized.Property("rocksdb.block-cache-capacity"));
        Assert.Equal(128L << 20, _replica.Property("rocksdb.block-cache-capacity"));
    }

    /// <summary>
    /// A resume window of 16 is trimmed 2 updates at a time: a cursor replays exactly while its updates are kept and is
    /// reset once a trim passed it. The feed (16 entries) is trimmed exactly, one entry per add past the cap, as the
    /// processor trims it: a post pushed out and then added again is a new entry.
    /// </summary>
    [Fact]
    public void TheLogIsTrimmedInChunks_TheFeedExactly()
    {
        using var chunked = new FeedReplica(Options.Create(new EdgeOptions { StateDir = Path.Combine(_stateDir, "chunked"), FeedSize = 16, ResumeWindow = 16 }));
        void Add(long offset, string post) => chunked.Apply(0, offset, Added("ann", post), ToEvent(Added("ann", post)));
        string[] Feed() => [.. chunked.ReadSnapshot("ann", 100).Entries.Select(e => e.Post.PostId)];

        for (var offset = 0; offset < 17; offset++)
        {
            Add(offset, $"p{offset}");
        }

        // 17 updates logged and none trimmed yet (the 18th triggers it): even a cursor from before the first replays.
        Assert.Equal(Enumerable.Range(1, 16).Select(i => $"p{i}"), Feed());
        Assert.Equal(17, chunked.ReadAfter("ann", FeedCursor.BeforeFirst).Updates.Count);

        // The 18th trims offsets 0 and 1 from the log.
        Add(17, "p17");
        Assert.Equal(Enumerable.Range(2, 16).Select(i => $"p{i}"), Feed());
        Assert.NotNull(chunked.ReadAfter("ann", FeedCursor.At(0, 0)).ResetReason);
        Assert.Equal(Enumerable.Range(2, 16).Select(i => (long)i), chunked.ReadAfter("ann", FeedCursor.At(0, 1)).Updates.Select(u => u.Offset));

        // p1 was pushed out of the feed with its held marker: added again, it is the newest entry.
        Add(18, "p1");
        Assert.Equal(Enumerable.Range(3, 15).Select(i => $"p{i}").Append("p1"), Feed());
    }

    /// <summary>
    /// The cap drops the entry at the feed's floor by a get; a removal that left a hole there sends it to the next
    /// entry held. Feed size 4.
    /// </summary>
    [Fact]
    public void TheCap_DropsTheOldestHeld_WhenTheOldestWasRemoved()
    {
        for (var offset = 0; offset < 4; offset++)
        {
            Apply(0, offset, Added("ann", $"p{offset}"));
        }

        Apply(0, 4, Removed("ann", "p0"));
        Apply(0, 5, Removed("ann", "p2"));
        Apply(0, 6, Added("ann", "p6"));
        Apply(0, 7, Added("ann", "p7"));
        Assert.Equal(["p1", "p3", "p6", "p7"], _replica.ReadSnapshot("ann", 100).Entries.Select(e => e.Post.PostId));

        // Past the cap: p1 goes (the floor was a hole), then p3 (past the hole p2 left), then p6 (found by a get).
        Apply(0, 8, Added("ann", "p8"));
        Assert.Equal(["p3", "p6", "p7", "p8"], _replica.ReadSnapshot("ann", 100).Entries.Select(e => e.Post.PostId));
        Apply(0, 9, Added("ann", "p9"));
        Apply(0, 10, Added("ann", "p10"));
        Assert.Equal(["p7", "p8", "p9", "p10"], _replica.ReadSnapshot("ann", 100).Entries.Select(e => e.Post.PostId));

        // Every dropped entry took its held marker with it: p1 comes back as new (pushing p7 out); p8, held, is not
        // added twice.
        Apply(0, 11, Added("ann", "p1"));
        Apply(0, 12, Added("ann", "p8"));
        Assert.Equal(["p8", "p9", "p10", "p1"], _replica.ReadSnapshot("ann", 100).Entries.Select(e => e.Post.PostId));
    }

    /// <summary>
    /// A replica in a layout before <see cref="FeedReplica.FormatVersion"/> (1: entries keyed by offset, no version
    /// key; 2: bare entry values) cannot be read by this one: it is deleted, and the edge rebuilds it from feed.updates.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void AReplicaInAnOlderLayout_IsDeleted_ForARebuild(int format)
    {
        Apply(0, 0, Added("ann", "p0"));
        _replica.Dispose();
        var path = Path.Combine(_stateDir, "feed-replica");
        using (var old = RocksDbSharp.RocksDb.Open(new RocksDbSharp.DbOptions(), path))
        {
            if (format == 1)
            {
                old.Remove("v");
            }
            else
            {
                var version = new byte[8];
                System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(version, format);
                old.Put(System.Text.Encoding.UTF8.GetBytes("v"), version);
            }
        }

        var logger = new FakeLogger<FeedReplica>();
        _replica = Open(logger);

        Assert.Null(_replica.NextOffset(0));
        Assert.Empty(_replica.ReadSnapshot("ann", 10).Entries);
        var warning = Assert.Single(logger.Collector.GetSnapshot());
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains($"in format {format}; this edge writes format {FeedReplica.FormatVersion}", warning.Message, StringComparison.Ordinal);
        Apply(0, 0, Added("ann", "p0"));
        _replica.Dispose();
        var reopened = new FakeLogger<FeedReplica>();
        _replica = Open(reopened);
        Assert.Equal(["p0"], _replica.ReadSnapshot("ann", 10).Entries.Select(e => e.Post.PostId));
        Assert.Empty(reopened.Collector.GetSnapshot());
    }

    [Fact]
    public void Writers_OnDisjointPartitions_ApplyConcurrently_AsOneWriterApplyingInTurn()
    {
        // 4 partitions of 10 users each, every feed past both caps (4 entries, 5 logged), with removals: two threads,
        // each with its own writer and half of the partitions, against one writer applying the same records in turn.
        const int Partitions = 4;
        var random = new Random(7);
        var records = new List<(int Partition, long Offset, FeedUpdate Update)>();
        var offsets = new long[Partitions];
        for (var i = 0; i < 4_000; i++)
        {
            var user = random.Next(40);
            var partition = user % Partitions;
            var update = random.Next(6) == 0 && i > 0
                ? Removed($"u{user}", $"p{random.Next(i)}")
                : Added($"u{user}", $"p{i}");
            records.Add((partition, offsets[partition]++, update));
        }

        var inTurnDir = _stateDir + "-in-turn";
        using (var inTurn = new FeedReplica(Options.Create(new EdgeOptions { StateDir = inTurnDir, FeedSize = 4, ResumeWindow = 5 })))
        {
            ApplyInBatches(inTurn.CreateWriter(), records);
            using var start = new Barrier(2);
            var failures = new Exception?[2];
            var threads = Enumerable.Range(0, 2).Select(thread => new Thread(() =>
            {
                try
                {
                    var writer = _replica.CreateWriter();
                    start.SignalAndWait();
                    ApplyInBatches(writer, records.Where(r => r.Partition % 2 == thread));
                }
                catch (Exception ex)
                {
                    failures[thread] = ex;
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Assert.Equal([null, null], failures);

            for (var partition = 0; partition < Partitions; partition++)
            {
                Assert.Equal(inTurn.NextOffset(partition), _replica.NextOffset(partition));
            }

            for (var user = 0; user < 40; user++)
            {
                var (expected, actual) = (inTurn.ReadSnapshot($"u{user}", 100), _replica.ReadSnapshot($"u{user}", 100));
                Assert.Equal(expected.Position, actual.Position);
                Assert.Equal(expected.Entries.Select(e => e.Post.PostId), actual.Entries.Select(e => e.Post.PostId));
                var (logged, replayed) = (inTurn.ReadAfter($"u{user}", FeedCursor.BeforeFirst), _replica.ReadAfter($"u{user}", FeedCursor.BeforeFirst));
                Assert.Equal(logged.ResetReason, replayed.ResetReason);
                Assert.Equal(logged.Updates.Select(u => u.Offset), replayed.Updates.Select(u => u.Offset));
            }

            Assert.Equal(4, _replica.ReadSnapshot("u0", 100).Entries.Count);
        }

        Directory.Delete(inTurnDir, recursive: true);
    }

    /// <summary>Batches of up to 16 with one update per user, as the edge's consumer stages them.</summary>
    private static void ApplyInBatches(FeedReplica.Writer writer, IEnumerable<(int Partition, long Offset, FeedUpdate Update)> records)
    {
        foreach (var (partition, offset, update) in records)
        {
            if (writer.StagedCount == 16 || writer.IsStaged(update.RecipientId))
            {
                writer.Commit();
            }

            writer.Stage(partition, offset, update, ToEvent(update));
        }

        writer.Commit();
    }

    public void Dispose()
    {
        _replica.Dispose();
        Directory.Delete(_stateDir, recursive: true);
    }

    private FeedReplica Open(ILogger<FeedReplica>? logger = null) =>
        new(Options.Create(new EdgeOptions { StateDir = _stateDir, FeedSize = 4, ResumeWindow = 5 }), logger);

    private void Apply(int partition, long offset, FeedUpdate update) => _replica.Apply(partition, offset, update, ToEvent(update));

    private static FeedEvent ToEvent(FeedUpdate update) => update.Kind == FeedUpdateKind.Added
        ? new FeedEvent { Added = new FeedEntry { Post = update.Post, Cause = update.Cause } }
        : new FeedEvent { Removed = new FeedEntryRemoved { PostId = update.Post.PostId, AuthorId = update.Post.AuthorId, Cause = update.Cause } };

    private static FeedUpdate Added(string user, string postId) =>
        new() { RecipientId = user, Kind = FeedUpdateKind.Added, Cause = FeedCause.Live, Post = new Post { PostId = postId, AuthorId = "author", Body = "b" } };

    private static FeedUpdate Removed(string user, string postId) =>
        new() { RecipientId = user, Kind = FeedUpdateKind.Removed, Cause = FeedCause.PostDeleted, Post = new Post { PostId = postId, AuthorId = "author" } };
}
