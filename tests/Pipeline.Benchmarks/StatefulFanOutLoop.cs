using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Pipeline.Kafka;
using Pipeline.Processor.Topology;
using RocksDbSharp;
using Streamiz.Kafka.Net.SerDes;

namespace Pipeline.Benchmarks;

/// <summary>
/// The raw loop with the processor's state and guarantee, hand-written on Confluent.Kafka and RocksDbSharp: what the
/// processor's semantics cost without Streamiz. Per post it records the post in the author's ledger and recent
/// posts; per follower it does the recipient stage's work for an add (the feed head read, the held-key check and
/// write, the entry write, the head write; at the cap the oldest entry and its held key deleted), with the
/// processor's store keys and value encodings and a store per partition, as the processor's tasks have; every store
/// write is also sent to a changelog topic; all of it in Kafka transactions committed with the consumer's offsets
/// every <see cref="CommitInterval"/>, as the processor's exactly-once default. Stores write without RocksDB's
/// write-ahead log, as Kafka Streams' do (the changelog is the log). Left out, so this is an upper bound for the
/// processor's work: the repartition hop between the author and recipient stages (here one process does both), the
/// recent posts' trim, and the source-position stores.
/// </summary>
public sealed class StatefulFanOutLoop : IDisposable
{
    public const string UpdatesTopic = "bench.stateful-updates";

    public const string ChangelogTopic = "bench.stateful-changelog";

    public static readonly TimeSpan CommitInterval = TimeSpan.FromMilliseconds(100);

    private static readonly TimeSpan TransactionTimeout = TimeSpan.FromSeconds(30);

    // The processor's own value encodings.
    private static readonly Int64SerDes Longs = new();
    private static readonly FeedHeadSerDes Heads = new();

    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"stateful-loop-{Guid.NewGuid():N}");
    private readonly WriteOptions _write = new WriteOptions().DisableWal(1);
    // One RocksDB per store and partition, as the processor's tasks keep them: author stores by the post's
    // partition, recipient stores by the user's.
    private readonly RocksDb[] _ledger;
    private readonly RocksDb[] _recent;
    private readonly RocksDb[] _entries;
    private readonly RocksDb[] _index;
    private readonly RocksDb[] _heads;
    private readonly IProducer<byte[], byte[]> _producer;
    private readonly int _feedSize;

    private StatefulFanOutLoop(string bootstrapServers, int feedSize, int partitions)
    {
        _feedSize = feedSize;
        Directory.CreateDirectory(_directory);
        // As the edge's replica: whole-key bloom filters answer the held-key check (a get of an absent key) without a
        // memtable search. Streamiz's store options do not expose them, so this is a step the processor cannot take.
        var options = new DbOptions().SetCreateIfMissing(true).SetMemtablePrefixBloomSizeRatio(0.02);
        Native.Instance.rocksdb_options_set_memtable_whole_key_filtering(options.Handle, 1);
        var table = new BlockBasedTableOptions();
        table.SetFilterPolicy(BloomFilterPolicy.Create());
        options.SetBlockBasedTableFactory(table);
        RocksDb[] Open(string store) => [.. Enumerable.Range(0, partitions).Select(partition => RocksDb.Open(options, Path.Combine(_directory, $"{store}-{partition}")))];
        (_ledger, _recent, _entries, _index, _heads) = (Open(StoreNames.PostLedger), Open(StoreNames.RecentPosts), Open(StoreNames.FeedEntries), Open(StoreNames.FeedIndex), Open(StoreNames.FeedHeads));
        _producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            TransactionalId = $"stateful-loop-{Guid.NewGuid():N}",
            LingerMs = 5,
            Partitioner = Partitioner.Murmur2Random,
        }).Build();
    }

    /// <summary>Changelog records sent, store writes and deletes alike.</summary>
    private long ChangelogRecords { get; set; }

    private long Transactions { get; set; }

    /// <summary>Time spent committing: sending the offsets and waiting for the commit, which first waits for every record of the transaction to be acknowledged.</summary>
    private TimeSpan CommitTime { get; set; }

    /// <summary>
    /// Consumes social.posts from the start until <paramref name="expected"/> feed updates are out and committed; the
    /// time runs from the first record consumed to the last transaction committed.
    /// </summary>
    /// <param name="partitions">The partition count of social.posts and of the processor's repartition topics: how many tasks, each with its own stores, the processor has.</param>
    public static (TimeSpan Elapsed, long ChangelogRecords, long Transactions, TimeSpan CommitTime) Run(string bootstrapServers, FeedWorkload workload, long expected, int feedSize, int partitions, CancellationToken cancellationToken)
    {
        using var loop = new StatefulFanOutLoop(bootstrapServers, feedSize, partitions);
        var elapsed = loop.Drain(bootstrapServers, workload, expected, cancellationToken);
        return (elapsed, loop.ChangelogRecords, loop.Transactions, loop.CommitTime);
    }

    public void Dispose()
    {
        _producer.Dispose();
        foreach (var db in new[] { _ledger, _recent, _entries, _index, _heads }.SelectMany(store => store))
        {
            db.Dispose();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private TimeSpan Drain(string bootstrapServers, FeedWorkload workload, long expected, CancellationToken cancellationToken)
    {
        var followers = workload.FollowersByAuthor();
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = $"stateful-loop-{Guid.NewGuid():N}",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            IsolationLevel = IsolationLevel.ReadCommitted,
            FetchWaitMaxMs = 50,
        }).Build();
        consumer.Subscribe(FeedTopics.Posts);
        _producer.InitTransactions(TransactionTimeout);
        _producer.BeginTransaction();
        long produced = 0;
        Stopwatch? stopwatch = null;
        var committed = TimeSpan.Zero;
        while (produced < expected && !cancellationToken.IsCancellationRequested)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result?.Message is not null)
            {
                stopwatch ??= Stopwatch.StartNew();
                produced += Apply(PostEvent.Parser.ParseFrom(result.Message.Value), result.Partition.Value, result.Offset.Value, followers);
            }

            if (stopwatch is not null && (stopwatch.Elapsed - committed >= CommitInterval || produced >= expected))
            {
                Commit(consumer);
                committed = stopwatch.Elapsed;
            }
        }

        consumer.Close();
        return stopwatch?.Elapsed ?? TimeSpan.Zero;
    }

    private void Commit(IConsumer<Ignore, byte[]> consumer)
    {
        var started = Stopwatch.GetTimestamp();
        var positions = consumer.Assignment.Select(tp => new TopicPartitionOffset(tp, consumer.Position(tp))).Where(p => p.Offset != Offset.Unset).ToList();
        _producer.SendOffsetsToTransaction(positions, consumer.ConsumerGroupMetadata, TransactionTimeout);
        _producer.CommitTransaction(TransactionTimeout);
        Transactions++;
        _producer.BeginTransaction();
        CommitTime += Stopwatch.GetElapsedTime(started);
    }

    /// <returns>The feed updates produced.</returns>
    private long Apply(PostEvent post, int partition, long sequence, Dictionary<string, string[]> followers)
    {
        var (ledger, recent) = (_ledger[partition], _recent[partition]);
        // The author stage: a post id seen before is not fanned out again; the post joins the author's recent posts.
        var ledgerKey = Key(AuthorKeys.Member(post.AuthorId, post.PostId));
        if (ledger.Get(ledgerKey) is not null)
        {
            return 0;
        }

        Write(ledger, ledgerKey, Long(sequence + 1));
        var feedPost = new Post { PostId = post.PostId, AuthorId = post.AuthorId, Body = post.Body, CreatedAtMs = post.CreatedAtMs };
        var postBytes = feedPost.ToByteArray();
        Write(recent, Key(AuthorKeys.Sequenced(post.AuthorId, sequence)), postBytes);

        // The recipient stage, per follower.
        long produced = 0;
        foreach (var user in followers.GetValueOrDefault(post.AuthorId, []))
        {
            var (heads, index, entries) = RecipientStores(user);
            var headKey = Key(user);
            var head = Head(heads.Get(headKey));
            var heldKey = Key(RecipientKeys.Held(user, post.AuthorId, post.PostId));
            if (index.Get(heldKey) is not null)
            {
                continue;
            }

            Write(index, heldKey, Long(head.Next + 1));
            Write(entries, Key(RecipientKeys.Entry(user, head.Next)), postBytes);
            head = head.Appended();
            if (head.Size > _feedSize)
            {
                head = DropOldest(user, head);
            }

            Write(heads, headKey, Head(head));
            var update = new FeedUpdate { RecipientId = user, Kind = FeedUpdateKind.Added, Cause = FeedCause.Live, Post = feedPost, SourceOccurredAtMs = post.OccurredAtMs };
            RawFanOutLoop.Produce(_producer, UpdatesTopic, headKey, update.ToByteArray());
            produced++;
        }

        return produced;
    }

    private (RocksDb Heads, RocksDb Index, RocksDb Entries) RecipientStores(string user)
    {
        var partition = KeyPartitioner.Partition(user, _heads.Length);
        return (_heads[partition], _index[partition], _entries[partition]);
    }

    private FeedHead DropOldest(string user, FeedHead head)
    {
        var (_, index, entries) = RecipientStores(user);
        var oldestKey = Key(RecipientKeys.Entry(user, head.Floor));
        var oldest = Post.Parser.ParseFrom(entries.Get(oldestKey) ?? throw new InvalidOperationException($"{user}'s feed holds no entry at its floor, {head.Floor}."));
        Write(entries, oldestKey, null);
        Write(index, Key(RecipientKeys.Held(user, oldest.AuthorId, oldest.PostId)), null);
        return head.DroppedOldest(head.Floor);
    }

    /// <summary>A store write (a delete when <paramref name="value"/> is null) and its changelog record.</summary>
    private void Write(RocksDb store, byte[] key, byte[]? value)
    {
        if (value is null)
        {
            store.Remove(key, null, _write);
        }
        else
        {
            store.Put(key, value, null, _write);
        }

        RawFanOutLoop.Produce(_producer, ChangelogTopic, key, value);
        ChangelogRecords++;
    }

    private static byte[] Key(string key) => Encoding.UTF8.GetBytes(key);

    private static byte[] Long(long value) => Longs.Serialize(value, default);

    private static FeedHead Head(byte[]? bytes) => Heads.Deserialize(bytes!, default);

    private static byte[] Head(FeedHead head) => Heads.Serialize(head, default);
}
