using System.Buffers.Binary;
using System.Buffers.Text;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using Feed.V1;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using RocksDbSharp;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// The edge's local replica of every user's feed, built from feed.updates in RocksDB on local disk: the current
/// entries (for snapshots) and a bounded log of each user's recent updates (for resuming from a cursor), plus the
/// consumed offset of every partition, written in the same batch as the data it covers so that a restart
/// continues exactly where the replica left off.
/// </summary>
/// <remarks>
/// Keys (ids never contain '/'; '0' sorts right after '/', so "{prefix}/{user}/" … "{prefix}/{user}0" is one user):
/// <c>o/{partition}</c> next offset · <c>s/{partition}</c> first offset this replica consumed ·
/// <c>m/{user}</c> meta · <c>e/{user}/{sequence}</c> feed entry · <c>x/{user}/{author}/{post}</c> sequence of that entry ·
/// <c>l/{user}/{offset}</c> logged update · <c>v</c> format version. A user's entries are numbered by a sequence of
/// their own (one per added entry, in the meta), so the oldest entry is found by a get at the feed's floor rather
/// than by an iterator seek. An entry's value is its held key's tail ("{author}/{post}", after a 2-byte big-endian
/// length) and then the <see cref="FeedEntry"/>, so dropping the oldest entry finds its held key without parsing it.
/// Offsets and sequences are zero-padded so byte order is numeric order.
/// Writes go through <see cref="Writer"/>s, one per applying thread, each owning a share of the partitions (a user's
/// updates all come from one partition: the processor keys feed.updates by recipient); readers use RocksDB
/// snapshots, so a subscriber always sees a consistent (meta, entries, offset) triple.
/// </remarks>
public sealed class FeedReplica : IDisposable
{
    // Readers (stream handlers) and the writers (apply threads) share the native handle; Dispose takes it
    // exclusively, so a call racing shutdown fails with ObjectDisposedException instead of touching freed memory.
    private readonly ReaderWriterLockSlim _handle = new(LockRecursionPolicy.SupportsRecursion);
    private readonly RocksDb _db;

    // Sized by Edge:ReplicaBlockCacheMb (see there): the blocks holding each feed's oldest entries, read on every add
    // at the caps.
    private readonly Cache _blockCache;

    // No write-ahead log: the replica is a cache of feed.updates whose checkpoints ("o/{partition}") are written in
    // the same batches as the data, and RocksDB keeps batches atomic across memtable flushes. A crash therefore
    // loses only a suffix of batches, data and checkpoint together, and the edge re-reads that suffix from
    // feed.updates before it reports ready; a clean stop flushes. Writing the log was most of the apply cost.
    private readonly WriteOptions _write = new WriteOptions().DisableWal(1);
    private bool _disposed;
    private readonly int _feedSize;
    private readonly int _resumeWindow;

    // The log of a user at the resume window is trimmed in chunks: it keeps up to a chunk − 1 updates more than the
    // window until the next trim, which removes a whole chunk with one iterator (each trim's seek, a fresh iterator
    // over the memtables and every level, was half of an apply at the caps). The feed itself is trimmed exactly,
    // one entry per add past the cap, as the processor does: an entry the processor dropped may be added again
    // (a re-follow's backfill), and the replica must then take it as new rather than as one it still holds.
    private readonly int _logTrimChunk;

    // The writer behind Apply, for callers on one thread (tests, tools); the edge's consumer makes its own.
    private Writer? _applier;
    private readonly List<Writer> _writers = [];

    /// <summary>
    /// The layout this edge writes. A replica written in another layout is deleted and rebuilt from feed.updates
    /// (as a lost one is): cursors stay valid while feed.updates still holds the updates after them.
    /// </summary>
    public const int FormatVersion = 3;

    private static readonly byte[] VersionKey = Key("v");

    public FeedReplica(IOptions<EdgeOptions> options, ILogger<FeedReplica>? logger = null, EdgeMetrics? metrics = null)
    {
        var edge = options.Value;
        _feedSize = edge.FeedSize;
        _resumeWindow = edge.ResumeWindow;
        _logTrimChunk = LogTrimChunk(_resumeWindow);
        _blockCache = Cache.CreateLru((ulong)edge.ReplicaBlockCacheMb << 20);
        Directory.CreateDirectory(edge.StateDir);
        var path = DirectoryIn(edge.StateDir);

        // An apply's gets and puts are mostly skiplist searches of the memtable. Whole-key bloom filters, in the
        // memtable (2 % of its size) and in the table files, answer a get of an absent key without the search, and
        // every added post's held-key check is one.
        var dbOptions = new DbOptions().SetCreateIfMissing(true).SetMemtablePrefixBloomSizeRatio(0.02);
        Native.Instance.rocksdb_options_set_memtable_whole_key_filtering(dbOptions.Handle, 1);
        var table = new BlockBasedTableOptions();
        table.SetFilterPolicy(BloomFilterPolicy.Create());
        table.SetBlockCache(_blockCache);
        dbOptions.SetBlockBasedTableFactory(table);
        _db = RocksDb.Open(dbOptions, path);
        if (StoredFormat() is { } stored && stored != FormatVersion)
        {
            (logger ?? (ILogger)NullLogger.Instance).LogWarning(
                "The feed replica at {Path} is in format {Stored}; this edge writes format {Current}. Deleting it to rebuild it from feed.updates: the edge reports ready once it has caught up.",
                path, stored, FormatVersion);
            _db.Dispose();
            Directory.Delete(path, recursive: true);
            _db = RocksDb.Open(dbOptions, path);
        }

        Span<byte> version = stackalloc byte[8];
        _db.Put(VersionKey, Long(FormatVersion, version));
        metrics?.ObserveReplica(Property);
    }

    /// <summary>Where the replica keeps its RocksDB files under <see cref="EdgeOptions.StateDir"/>.</summary>
    public static string DirectoryIn(string stateDir) => Path.Combine(stateDir, "feed-replica");

    /// <summary>
    /// The stored layout: null for an empty replica, 1 for one written before the version was recorded (entries keyed
    /// by offset), 2 for entries keyed by sequence but stored as bare <see cref="FeedEntry"/> messages.
    /// </summary>
    private long? StoredFormat()
    {
        if (ReadLong(VersionKey, null) is { } version)
        {
            return version;
        }

        using var any = _db.NewIterator();
        any.SeekToFirst();
        return any.Valid() ? 1 : null;
    }

    /// <summary>Where to continue consuming <paramref name="partition"/>, or null for a replica that never saw it.</summary>
    public long? NextOffset(int partition)
    {
        Enter();
        try
        {
            return ReadLong(Key($"o/{partition}"), null);
        }
        finally
        {
            _handle.ExitReadLock();
        }
    }

    /// <summary>
    /// Applies one feed.updates record and advances the partition's checkpoint, atomically: a batch of one, written
    /// by the replica's own <see cref="Writer"/>. For callers on one thread that do not batch (tests, tools).
    /// </summary>
    public void Apply(int partition, long offset, FeedUpdate update, FeedEvent loggedEvent)
    {
        var writer = _applier ??= CreateWriter();
        writer.Stage(partition, offset, update, loggedEvent);
        writer.Commit();
    }

    /// <summary>
    /// A writer with its own batch and scratch space, for one applying thread. Writers on different threads must
    /// stage disjoint partitions (each partition's checkpoint and its users' state belong to one writer); RocksDB
    /// takes their writes concurrently.
    /// </summary>
    public Writer CreateWriter()
    {
        var writer = new Writer(this);
        lock (_writers)
        {
            _writers.Add(writer);
        }

        return writer;
    }

    /// <summary>
    /// The newest <paramref name="maxEntries"/> entries of the user's feed, oldest first, and the position they
    /// reflect: every update of the user up to and including <see cref="ReplicaSnapshot.Position"/> is in them.
    /// </summary>
    public ReplicaSnapshot ReadSnapshot(string user, int maxEntries)
    {
        Enter();
        try
        {
            using var snapshot = _db.CreateSnapshot();
            using var at = SnapshotRead.At(snapshot);
            var read = at.Options;
            if (ReadMeta(user, read) is not { } meta)
            {
                return new ReplicaSnapshot([], FeedCursor.BeforeFirst);
            }

            var entries = new List<FeedEntry>(Math.Min(maxEntries, meta.Entries));
            if (maxEntries > 0)
            {
                using var iterator = _db.NewIterator(null, read);
                var prefix = Key($"e/{user}/");
                for (iterator.SeekForPrev(Key($"e/{user}0")); iterator.Valid() && entries.Count < maxEntries && iterator.GetKeySpan().StartsWith(prefix); iterator.Prev())
                {
                    entries.Add(FeedEntry.Parser.ParseFrom(EntryMessage(iterator.GetValueSpan())));
                }

                entries.Reverse();
            }

            var position = ReadLong(Key($"o/{meta.Partition}"), read)!.Value - 1;
            return new ReplicaSnapshot(entries, FeedCursor.At(meta.Partition, position));
        }
        finally
        {
            _handle.ExitReadLock();
        }
    }

    /// <summary>The user's updates after <paramref name="cursor"/>, or why they can no longer be replayed.</summary>
    public ReplicaResume ReadAfter(string user, FeedCursor cursor)
    {
        Enter();
        try
        {
            using var snapshot = _db.CreateSnapshot();
            using var at = SnapshotRead.At(snapshot);
            var read = at.Options;
            var found = ReadMeta(user, read);
            if (cursor.Partition >= 0)
            {
                var applied = (ReadLong(Key($"o/{cursor.Partition}"), read) ?? 0) - 1;
                if (cursor.Offset > applied)
                {
                    return ReplicaResume.Behind;
                }

                if (cursor.Offset + 1 < (ReadLong(Key($"s/{cursor.Partition}"), read) ?? 0))
                {
                    return ReplicaResume.Reset("the edge's feed store was rebuilt after this cursor was issued");
                }
            }

            if (found is not { } meta)
            {
                return ReplicaResume.Replay([]);
            }

            if (cursor.Partition >= 0 && cursor.Partition != meta.Partition)
            {
                return ReplicaResume.Reset("the feed moved to another partition of feed.updates");
            }

            if (cursor.Offset < meta.TrimmedThrough)
            {
                return ReplicaResume.Reset($"the cursor is older than the last {_resumeWindow} updates the edge keeps per feed");
            }

            var updates = new List<(FeedEvent Event, long Offset)>();
            using var iterator = _db.NewIterator(null, read);
            var prefix = Key($"l/{user}/");
            for (iterator.Seek(LogKey(user, cursor.Offset + 1)); iterator.Valid() && iterator.GetKeySpan().StartsWith(prefix); iterator.Next())
            {
                updates.Add((FeedEvent.Parser.ParseFrom(iterator.GetValueSpan()), NumberOf(iterator.GetKeySpan())));
            }

            return ReplicaResume.Replay(updates, meta.Partition);
        }
        finally
        {
            _handle.ExitReadLock();
        }
    }

    public void Dispose()
    {
        _handle.EnterWriteLock();
        try
        {
            if (!_disposed)
            {
                _disposed = true;
                _db.Flush(new FlushOptions().SetWaitForFlush(true));
                lock (_writers)
                {
                    foreach (var writer in _writers)
                    {
                        writer.Free();
                    }
                }

                _db.Dispose();
            }
        }
        finally
        {
            _handle.ExitWriteLock();
        }
    }

    /// <summary>
    /// A numeric RocksDB property of the replica (<c>rocksdb.block-cache-usage</c>,
    /// <c>rocksdb.estimate-pending-compaction-bytes</c>, …); null when the edge is shutting down or RocksDB does not
    /// know it. For the metrics scrape, from any thread.
    /// </summary>
    public long? Property(string name)
    {
        _handle.EnterReadLock();
        try
        {
            return !_disposed && long.TryParse(_db.GetProperty(name), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        finally
        {
            _handle.ExitReadLock();
        }
    }

    private void Enter()
    {
        _handle.EnterReadLock();
        if (_disposed)
        {
            _handle.ExitReadLock();
            throw new ObjectDisposedException(nameof(FeedReplica), "the edge is shutting down");
        }
    }

    private UserMeta? ReadMeta(string user, ReadOptions? read) => _db.Get(Key($"m/{user}"), MetaReader.Instance, null, read);

    private long? ReadLong(ReadOnlySpan<byte> key, ReadOptions? read) => _db.Get(key, LongReader.Instance, null, read);

    /// <summary>
    /// "{prefix}{first}[/{second}[/{third}]][/{number:D19}]" as UTF-8 in <paramref name="buffer"/> (grown when
    /// needed); valid until the buffer's next use.
    /// </summary>
    private static ReadOnlySpan<byte> Compose(ref byte[] buffer, string prefix, string first, string? second = null, string? third = null, long number = -1)
    {
        var longest = prefix.Length + Encoding.UTF8.GetMaxByteCount(first.Length + (second?.Length ?? 0) + (third?.Length ?? 0)) + 3 + 19;
        if (buffer.Length < longest)
        {
            buffer = new byte[Math.Max(longest, buffer.Length * 2)];
        }

        var span = buffer.AsSpan();
        var length = Encoding.UTF8.GetBytes(prefix, span);
        length += Encoding.UTF8.GetBytes(first, span[length..]);
        foreach (var part in (ReadOnlySpan<string?>)[second, third])
        {
            if (part is not null)
            {
                span[length++] = (byte)'/';
                length += Encoding.UTF8.GetBytes(part, span[length..]);
            }
        }

        if (number >= 0)
        {
            span[length++] = (byte)'/';
            number.TryFormat(span[length..], out var written, "D19", CultureInfo.InvariantCulture);
            length += written;
        }

        return span[..length];
    }

    private static byte[] PartitionKey(Dictionary<int, byte[]> keys, string prefix, int partition)
    {
        if (!keys.TryGetValue(partition, out var key))
        {
            key = Key($"{prefix}{partition}");
            keys[partition] = key;
        }

        return key;
    }

    /// <summary>The <see cref="FeedEntry"/> in an entry's stored value.</summary>
    private static ReadOnlySpan<byte> EntryMessage(ReadOnlySpan<byte> stored) => stored[(2 + BinaryPrimitives.ReadUInt16BigEndian(stored))..];

    /// <summary>Where "{author}/{post}" starts in the user's held key "x/{user}/{author}/{post}".</summary>
    private static int HeldKeyTailStart(string user) => 2 + Encoding.UTF8.GetByteCount(user) + 1;

    /// <summary>
    /// How many logged updates one trim removes: an eighth of the resume window, at least 1 and at most 64. A user's
    /// log holds between the window and the window plus this less one.
    /// </summary>
    public static int LogTrimChunk(int resumeWindow) => Math.Clamp(resumeWindow / 8, 1, 64);

    private static byte[] LogKey(string user, long offset) => Key($"l/{user}/{offset.ToString("D19", CultureInfo.InvariantCulture)}");

    /// <summary>The offset or sequence that ends a key (19 zero-padded digits).</summary>
    private static long NumberOf(ReadOnlySpan<byte> key) =>
        Utf8Parser.TryParse(key[^19..], out long number, out var consumed) && consumed == 19
            ? number
            : throw new InvalidOperationException($"The replica key {Encoding.UTF8.GetString(key)} does not end in a number.");

    private static byte[] Key(string key) => Encoding.UTF8.GetBytes(key);

    private static ReadOnlySpan<byte> Long(long value, Span<byte> scratch)
    {
        BinaryPrimitives.WriteInt64BigEndian(scratch, value);
        return scratch[..8];
    }

    /// <summary>
    /// Stages and commits updates for one applying thread, with its own batch and scratch space; create with
    /// <see cref="CreateWriter"/>. The replica's <see cref="Dispose"/> frees it.
    /// </summary>
    [SuppressMessage("Reliability", "CA1001", Justification = "The replica frees its writers' batches when it is disposed, under its exclusive handle lock, so no write is in flight; a writer disposed on its own could free a batch another thread is still staging into.")]
    public sealed class Writer
    {
        private readonly FeedReplica _replica;

        // The writer's scratch space. Only its thread applies, so one batch, three key buffers, one value buffer,
        // one held-key reader and one entry message serve every update, at the caps too (trims delete the keys they
        // iterate over from the iterator's own memory): at 10,000 subscribers each collection stops the edge for
        // tens of milliseconds, and the replica's keys, values and batches were over half of what the dispatch path
        // allocated.
        private readonly WriteBatch _batch = new();
        private readonly FeedEntry _entry = new();
        private readonly HashSet<int> _startRecorded = [];

        // The batch being staged: its users (one update each), each partition's next offset, the partitions whose
        // first offset it records.
        private readonly HashSet<string> _stagedUsers = new(StringComparer.Ordinal);
        private readonly Dictionary<int, long> _stagedCheckpoints = [];
        private readonly HashSet<int> _startStaged = [];
        private readonly Dictionary<int, byte[]> _offsetKeys = [];
        private readonly Dictionary<int, byte[]> _startKeys = [];
        private byte[] _heldKey = new byte[256];
        private byte[] _key = new byte[256];
        private byte[] _prefix = new byte[256];
        private byte[] _value = new byte[1024];
        private readonly HeldTailReader _heldTail = new();

        internal Writer(FeedReplica replica) => _replica = replica;

        /// <summary>Whether <paramref name="user"/> has an update in the batch not yet committed.</summary>
        public bool IsStaged(string user) => _stagedUsers.Contains(user);

        /// <summary>How many updates the batch not yet committed holds.</summary>
        public int StagedCount => _stagedUsers.Count;

        /// <summary>
        /// Adds one feed.updates record to the batch that <see cref="Commit"/> writes, with the partitions'
        /// checkpoints, in one atomic write. A batch holds at most one update per user: staging reads the user's state
        /// from the store, so a second update of a staged user must wait for the commit (<see cref="IsStaged"/>).
        /// Called by the writer's thread only (it reuses the writer's scratch space).
        /// </summary>
        public void Stage(int partition, long offset, FeedUpdate update, FeedEvent loggedEvent)
        {
            if (!_stagedUsers.Add(update.RecipientId))
            {
                throw new InvalidOperationException($"an update of {update.RecipientId} is already staged; commit the batch first");
            }

            _replica.Enter();
            try
            {
                var user = update.RecipientId;
                var meta = ReadMetaRaw(user, null) ?? new UserMeta(partition, 0, 0, -1, 0, 0);
                var batch = _batch;
                Span<byte> number = stackalloc byte[UserMeta.Size];
                if (!_startRecorded.Contains(partition) && !_startStaged.Contains(partition) && _replica.ReadLong(StartKey(partition), null) is null)
                {
                    batch.Put(StartKey(partition), Long(offset, number), null);
                    _startStaged.Add(partition);
                }

                var post = update.Post ?? new Post();
                var heldKey = Compose(ref _heldKey, "x/", user, post.AuthorId, post.PostId);
                if (update.Kind == FeedUpdateKind.Added && _replica.ReadLong(heldKey, null) is null)
                {
                    _entry.Post = post;
                    _entry.Cause = update.Cause;
                    _entry.FromSnapshot = true;
                    _entry.SourceOccurredAtMs = update.SourceOccurredAtMs;
                    batch.Put(Compose(ref _key, "e/", user, number: meta.NextEntry), SerializeEntry(heldKey[HeldKeyTailStart(user)..], _entry), null);
                    batch.Put(heldKey, Long(meta.NextEntry, number), null);
                    meta = meta with { Entries = meta.Entries + 1, NextEntry = meta.NextEntry + 1 };
                    if (meta.Entries > _replica._feedSize)
                    {
                        meta = DropOldestEntry(user, meta);
                    }
                }
                else if (update.Kind == FeedUpdateKind.Removed && _replica.ReadLong(heldKey, null) is { } heldAt)
                {
                    batch.Delete(Compose(ref _key, "e/", user, number: heldAt), null);
                    batch.Delete(heldKey, null);
                    meta = meta with { Entries = meta.Entries - 1 };
                }

                batch.Put(Compose(ref _key, "l/", user, number: offset), Serialize(loggedEvent), null);
                meta = meta with { Logged = meta.Logged + 1 };
                if (meta.Logged >= _replica._resumeWindow + _replica._logTrimChunk)
                {
                    meta = TrimLog(user, meta);
                }

                meta.WriteTo(number);
                batch.Put(Compose(ref _key, "m/", user), number, null);
                _stagedCheckpoints[partition] = offset + 1;
            }
            finally
            {
                _replica._handle.ExitReadLock();
            }
        }

        /// <summary>
        /// Stages the deletion of the user's oldest entry (and its held key). The oldest is the entry at the floor unless
        /// a removal left a hole there; then it is the first one after it, found by a seek (removals are rare).
        /// </summary>
        /// <remarks>The new entry is staged, not stored: the user holds at least one stored entry past the cap.</remarks>
        private UserMeta DropOldestEntry(string user, UserMeta meta)
        {
            var sequence = meta.EntryFloor;
            var tail = _replica._db.Get(Compose(ref _key, "e/", user, number: sequence), _heldTail, null, null);
            if (tail is null)
            {
                using var iterator = _replica._db.NewIterator(null, null);
                var prefix = Compose(ref _prefix, "e/", user, "");
                iterator.Seek(Compose(ref _key, "e/", user, number: sequence));
                if (iterator.Valid() && iterator.GetKeySpan().StartsWith(prefix))
                {
                    sequence = NumberOf(iterator.GetKeySpan());
                    tail = _heldTail.Deserialize(iterator.GetValueSpan());
                }
            }

            if (tail is not { } tailLength)
            {
                return meta;
            }

            _batch.Delete(Compose(ref _key, "e/", user, number: sequence), null);
            _batch.Delete(HeldKey(user, _heldTail.Buffer.AsSpan(0, tailLength)), null);
            return meta with { Entries = meta.Entries - 1, EntryFloor = sequence + 1 };
        }

        /// <summary>
        /// Stages the deletion of the user's oldest logged updates down to the resume window. The oldest in the store:
        /// the update just staged is in the batch, not yet in the store. Seeks from where the previous trim stopped rather
        /// than from the start of the user's range, which is paved with the deletion markers of every earlier trim until
        /// RocksDB compacts them (seeking over them made each trim slower than the last).
        /// </summary>
        private UserMeta TrimLog(string user, UserMeta meta)
        {
            var excess = meta.Logged - _replica._resumeWindow;
            var trimmed = 0;
            var through = meta.TrimmedThrough;
            using var iterator = _replica._db.NewIterator(null, null);
            var prefix = Compose(ref _prefix, "l/", user, "");
            for (iterator.Seek(Compose(ref _key, "l/", user, number: meta.TrimmedThrough + 1)); trimmed < excess && iterator.Valid(); iterator.Next())
            {
                var key = iterator.GetKeySpan();
                if (!key.StartsWith(prefix))
                {
                    break;
                }

                _batch.Delete(key, null);
                through = NumberOf(key);
                trimmed++;
            }

            return meta with { Logged = meta.Logged - trimmed, TrimmedThrough = through };
        }

        /// <summary>
        /// Writes the staged updates and each partition's checkpoint (one put per partition, not per update) in one
        /// atomic write; the batch is empty afterwards, written or not.
        /// </summary>
        public void Commit()
        {
            if (_stagedUsers.Count == 0)
            {
                return;
            }

            _replica.Enter();
            try
            {
                Span<byte> number = stackalloc byte[8];
                foreach (var (partition, next) in _stagedCheckpoints)
                {
                    _batch.Put(OffsetKey(partition), Long(next, number), null);
                }

                _replica._db.Write(_batch, _replica._write);
                _startRecorded.UnionWith(_startStaged);
            }
            finally
            {
                _batch.Clear();
                _stagedUsers.Clear();
                _stagedCheckpoints.Clear();
                _startStaged.Clear();
                _replica._handle.ExitReadLock();
            }
        }

        /// <summary>The writer's meta read: its key in the scratch buffer, the value read in place.</summary>
        private UserMeta? ReadMetaRaw(string user, ReadOptions? read) =>
            _replica._db.Get(Compose(ref _key, "m/", user), MetaReader.Instance, null, read);

        private byte[] OffsetKey(int partition) => PartitionKey(_offsetKeys, "o/", partition);

        private byte[] StartKey(int partition) => PartitionKey(_startKeys, "s/", partition);

        /// <summary>An entry's stored value: the held key's tail, length first, then the entry (see the remarks above).</summary>
        private ReadOnlySpan<byte> SerializeEntry(ReadOnlySpan<byte> heldTail, FeedEntry entry)
        {
            var size = entry.CalculateSize();
            var length = 2 + heldTail.Length + size;
            if (_value.Length < length)
            {
                _value = new byte[Math.Max(length, _value.Length * 2)];
            }

            BinaryPrimitives.WriteUInt16BigEndian(_value, checked((ushort)heldTail.Length));
            heldTail.CopyTo(_value.AsSpan(2));
            entry.WriteTo(_value.AsSpan(2 + heldTail.Length, size));
            return _value.AsSpan(0, length);
        }

        /// <summary>"x/{user}/" followed by <paramref name="tail"/>, in the key buffer.</summary>
        private ReadOnlySpan<byte> HeldKey(string user, ReadOnlySpan<byte> tail)
        {
            var start = Compose(ref _key, "x/", user, "").Length;
            if (_key.Length < start + tail.Length)
            {
                Array.Resize(ref _key, Math.Max(start + tail.Length, _key.Length * 2));
            }

            tail.CopyTo(_key.AsSpan(start));
            return _key.AsSpan(0, start + tail.Length);
        }

        /// <summary>A logged update's stored value: the event as sent to subscribers.</summary>
        private ReadOnlySpan<byte> Serialize(FeedEvent loggedEvent)
        {
            var size = loggedEvent.CalculateSize();
            if (_value.Length < size)
            {
                _value = new byte[Math.Max(size, _value.Length * 2)];
            }

            loggedEvent.WriteTo(_value.AsSpan(0, size));
            return _value.AsSpan(0, size);
        }

        /// <summary>Frees the batch; the replica calls it at its disposal, when no writer is running.</summary>
        internal void Free() => _batch.Dispose();
    }

    /// <summary>
    /// Per-user bookkeeping: the user's partition, entry and log counts, the newest log offset trimmed, the entry
    /// sequence below which no entry is left (where the next trim looks), and the next entry's sequence.
    /// </summary>
    private readonly record struct UserMeta(int Partition, int Entries, int Logged, long TrimmedThrough, long EntryFloor, long NextEntry)
    {
        public const int Size = 36;

        public void WriteTo(Span<byte> bytes)
        {
            BinaryPrimitives.WriteInt32BigEndian(bytes, Partition);
            BinaryPrimitives.WriteInt32BigEndian(bytes[4..], Entries);
            BinaryPrimitives.WriteInt32BigEndian(bytes[8..], Logged);
            BinaryPrimitives.WriteInt64BigEndian(bytes[12..], TrimmedThrough);
            BinaryPrimitives.WriteInt64BigEndian(bytes[20..], EntryFloor);
            BinaryPrimitives.WriteInt64BigEndian(bytes[28..], NextEntry);
        }

        public static UserMeta FromBytes(ReadOnlySpan<byte> bytes) => new(
            BinaryPrimitives.ReadInt32BigEndian(bytes),
            BinaryPrimitives.ReadInt32BigEndian(bytes[4..]),
            BinaryPrimitives.ReadInt32BigEndian(bytes[8..]),
            BinaryPrimitives.ReadInt64BigEndian(bytes[12..]),
            BinaryPrimitives.ReadInt64BigEndian(bytes[20..]),
            BinaryPrimitives.ReadInt64BigEndian(bytes[28..]));
    }

    /// <summary>Copies a stored entry's held-key tail into its buffer and answers its length (null: no entry).</summary>
    private sealed class HeldTailReader : ISpanDeserializer<int?>
    {
        public byte[] Buffer { get; private set; } = new byte[128];

        public int? Deserialize(ReadOnlySpan<byte> stored)
        {
            var length = BinaryPrimitives.ReadUInt16BigEndian(stored);
            if (Buffer.Length < length)
            {
                Buffer = new byte[Math.Max(length, Buffer.Length * 2)];
            }

            stored.Slice(2, length).CopyTo(Buffer);
            return length;
        }
    }

    private sealed class MetaReader : ISpanDeserializer<UserMeta?>
    {
        public static readonly MetaReader Instance = new();

        public UserMeta? Deserialize(ReadOnlySpan<byte> buffer) => UserMeta.FromBytes(buffer);
    }

    private sealed class LongReader : ISpanDeserializer<long?>
    {
        public static readonly LongReader Instance = new();

        public long? Deserialize(ReadOnlySpan<byte> buffer) => BinaryPrimitives.ReadInt64BigEndian(buffer);
    }
}

/// <summary>
/// Read options pointed at a snapshot for one synchronous read, and at none after. Each thread keeps one: a
/// <see cref="ReadOptions"/> per read cost an allocation and a finalizer run (RocksDbSharp frees it only there),
/// one per subscribe and resume, thousands at once after an edge restart.
/// </summary>
internal readonly ref struct SnapshotRead : IDisposable
{
    [ThreadStatic]
    private static ReadOptions? t_options;

    private SnapshotRead(ReadOptions options) => Options = options;

    public ReadOptions Options { get; }

    public static SnapshotRead At(Snapshot snapshot) => new((t_options ??= new ReadOptions()).SetSnapshot(snapshot));

    /// <summary>Unpoints the options before the snapshot is released: they never hold a released snapshot.</summary>
    public void Dispose() => Native.Instance.rocksdb_readoptions_set_snapshot(Options.Handle, IntPtr.Zero);
}

/// <summary>A user's snapshot and the position it reflects.</summary>
public sealed record ReplicaSnapshot(IReadOnlyList<FeedEntry> Entries, FeedCursor Position);

/// <summary>Outcome of a resume: the updates to replay, a reset with its reason, or "this edge has not caught up yet".</summary>
public sealed record ReplicaResume(IReadOnlyList<(FeedEvent Event, long Offset)> Updates, int Partition, string? ResetReason, bool IsBehind)
{
    public static ReplicaResume Behind { get; } = new([], -1, null, true);

    public static ReplicaResume Replay(IReadOnlyList<(FeedEvent Event, long Offset)> updates, int partition = -1) => new(updates, partition, null, false);

    public static ReplicaResume Reset(string reason) => new([], -1, reason, false);
}
