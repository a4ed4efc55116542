using System.ComponentModel.DataAnnotations;
using Pipeline.Kafka.Contracts;

namespace Pipeline.StreamEdge;

/// <summary>The "Edge" configuration section.</summary>
public sealed class EdgeOptions
{
    public const string SectionName = "Edge";

    /// <summary>
    /// Events buffered per subscriber. A subscriber that falls this far behind is ended with ABORTED and resumes
    /// from its last cursor, so one slow reader never holds memory or the dispatch loop hostage.
    /// </summary>
    [Range(16, 1_000_000)]
    public int SubscriberBufferSize { get; set; } = 1024;

    /// <summary>
    /// Events buffered per partition-range (service) subscription. It carries every update of its partitions, so
    /// it gets a deeper buffer than a user's; the same cut-off policy applies.
    /// </summary>
    [Range(16, 10_000_000)]
    public int PartitionSubscriberBufferSize { get; set; } = 65_536;

    /// <summary>Concurrent partition-range subscriptions one edge process serves; beyond it RESOURCE_EXHAUSTED.</summary>
    [Range(1, 10_000)]
    public int MaxPartitionSubscriptions { get; set; } = 64;

    /// <summary>Concurrent subscriptions of all kinds one edge process holds; beyond it RESOURCE_EXHAUSTED (another instance can take them).</summary>
    [Range(1, 10_000_000)]
    public int MaxSubscriptions { get; set; } = 200_000;

    /// <summary>Concurrent subscriptions one user may hold (devices, tabs); beyond it RESOURCE_EXHAUSTED.</summary>
    [Range(1, 1000)]
    public int MaxSubscriptionsPerUser { get; set; } = 10;

    /// <summary>Largest post body ingest accepts, in UTF-8 bytes.</summary>
    [Range(1, 1 << 20)]
    public int MaxPostBodyBytes { get; set; } = FeedContract.DefaultMaxPostBodyBytes;

    /// <summary>Where the edge keeps its replica of the feeds (RocksDB). Keep it across restarts: a fresh one is rebuilt from feed.updates.</summary>
    [Required]
    public string StateDir { get; set; } = "./edge-state";

    /// <summary>Entries kept per user; must equal the processor's Processor:FeedSize so the replica matches the stored feed.</summary>
    [Range(1, 100_000)]
    public int FeedSize { get; set; } = 800;

    /// <summary>Most snapshot entries one Subscribe may ask for.</summary>
    [Range(0, 100_000)]
    public int MaxSnapshotSize { get; set; } = 100;

    /// <summary>
    /// Updates kept per user for resuming from a cursor; an older cursor gets a reset and a fresh snapshot. At least
    /// this many: trims run in chunks of an eighth of it (at most 64), so up to that many older ones may still replay.
    /// </summary>
    [Range(1, 1_000_000)]
    public int ResumeWindow { get; set; } = 1000;

    /// <summary>
    /// Memory for the replica's RocksDB block cache, in MiB. A feed at its caps reads its oldest entry on every add;
    /// the block holding it serves the feed's next ~30 adds, but feeds take their turns round-robin, so a cache
    /// smaller than one block per active feed (about 5 KiB each) evicts every block before its next use and each add
    /// reads and decompresses one from the table files (RocksDB's default is 32 MiB). 128 MiB covers about 25,000
    /// feeds at their caps; watch <c>feed_edge_replica_block_cache_bytes</c>.
    /// </summary>
    [Range(8, 1_048_576)]
    public int ReplicaBlockCacheMb { get; set; } = 128;

    /// <summary>
    /// Threads that consume feed.updates, apply it to the replica and dispatch it, each with a Kafka consumer of its
    /// own and a share of the partitions (partition p to thread p mod N; never more threads than partitions). An
    /// apply is RocksDB reads and one batched write on the applying thread, 24–37 µs at the production caps, so
    /// each thread applies at most about 27,000–41,000 updates/s; more threads pay only where cores are free beside
    /// RocksDB's compaction. Each thread adds a consumer's connections.
    /// </summary>
    [Range(1, 64)]
    public int ApplyThreads { get; set; } = 1;

    /// <summary>
    /// Stream opens that make a subscribe burst (a resume storm, clients reconnecting after a deploy). Five seconds
    /// after one goes quiet the edge releases Kestrel's free buffer blocks and, if they and the heap's free space come
    /// to a tenth of the heap, runs one full compacting collection (<see cref="BurstCompactor"/>): 50,000 subscribers
    /// opened at once were held at 8.2–8.6 KiB each after it, 11.2–13.6 KiB without, for a pause of every thread of
    /// 1.0–1.8 s (20–35 µs per open stream). 0 turns it off.
    /// </summary>
    [Range(0, 10_000_000)]
    public int CompactAfterBurstOf { get; set; } = 5_000;

    /// <summary>
    /// While the replica catches up (after a start or restart), how long a feed stream is held before it is
    /// refused with UNAVAILABLE. A held stream proceeds the moment the edge is ready, so reconnecting subscribers
    /// wait in place instead of retrying in a storm that takes the CPU the catch-up needs. 0 refuses at once.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan NotReadyHoldTime { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// After a subscriber is cut off for falling <see cref="SubscriberBufferSize"/> events behind, how long a response
    /// write still in flight may take. A client that is slow but reading gets it through and then ABORTED with the
    /// reason; one that reads nothing for this long has its stream reset (clients report CANCELLED).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan SlowSubscriberGrace { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Interval of heartbeat events on idle and busy streams alike.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Base64 HMAC key (at least 32 bytes) that signs cursors. Every edge instance must share it, or cursors
    /// from one instance are refused by another.
    /// </summary>
    [Required]
    public string CursorSigningKey { get; set; } = "";

    /// <summary>Consumer group of the edge's feed.updates consumer (used for client metrics, not for offsets).</summary>
    [Required]
    public string ConsumerGroupId { get; set; } = "stream-edge";
}
