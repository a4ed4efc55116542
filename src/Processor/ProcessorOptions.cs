using System.ComponentModel.DataAnnotations;
using Pipeline.Kafka.Contracts;

namespace Pipeline.Processor;

public enum DeliveryGuarantee
{
    /// <summary>Transactions: each input record's output and state changes commit together, exactly once.</summary>
    ExactlyOnce,

    /// <summary>No transactions: lower latency, but a crash can re-emit updates produced since the last commit.</summary>
    AtLeastOnce,
}

/// <summary>The "Processor" configuration section.</summary>
public sealed class ProcessorOptions
{
    public const string SectionName = "Processor";

    /// <summary>Kafka Streams application id: the consumer group and the prefix of internal topics.</summary>
    [Required]
    [RegularExpression("^[A-Za-z0-9._-]{1,200}$", ErrorMessage = "Processor:ApplicationId may contain only letters, digits, '.', '_' and '-'.")]
    public string ApplicationId { get; set; } = "feed-processor";

    /// <summary>Where RocksDB stores live. Losing it is safe (stores restore from changelogs) but slow.</summary>
    [Required]
    public string StateDir { get; set; } = "./state";

    public DeliveryGuarantee Guarantee { get; set; } = DeliveryGuarantee.ExactlyOnce;

    [Range(1, 64)]
    public int StreamThreads { get; set; } = 1;

    /// <summary>
    /// How often offsets (and, exactly-once, transactions) commit; unset, the guarantee's default, as in Kafka
    /// Streams. Exactly-once: 100 ms, since output becomes visible at each commit. At-least-once: 30,000 ms, since
    /// output is visible at once and each commit flushes every state store; a crash re-reads up to this much input.
    /// </summary>
    [Range(10, 60_000)]
    public int? CommitIntervalMs { get; set; }

    /// <summary><see cref="CommitIntervalMs"/>, or the guarantee's default when it is unset.</summary>
    public int EffectiveCommitIntervalMs => CommitIntervalMs ?? (Guarantee == DeliveryGuarantee.ExactlyOnce ? 100 : 30_000);

    /// <summary>Largest post body accepted, in UTF-8 bytes; larger posts go to the dead-letter topic.</summary>
    [Range(1, 1 << 20)]
    public int MaxPostBodyBytes { get; set; } = FeedContract.DefaultMaxPostBodyBytes;

    /// <summary>
    /// Longest time a fetch waits for data. A Kafka broker answers as soon as data arrives, so this costs latency
    /// only on brokers that answer a fetch when it expires (librdkafka's mock: the embedded stack sets 10), where
    /// every hop of the topology can add up to this much; lower means more empty fetches on an idle topic.
    /// </summary>
    [Range(1, 10_000)]
    public int FetchWaitMaxMs { get; set; } = 50;

    /// <summary>
    /// How long each stream-thread iteration collects records before processing them. Streamiz keeps polling for
    /// the whole of it unless <c>MaxPollRecords</c> (500) arrive, so at a moderate rate every hop waits for it: lower
    /// it for latency (an idle thread then loops more often, each loop blocking in the consumer), raise it for
    /// larger batches.
    /// </summary>
    [Range(1, 1_000)]
    public int PollMs { get; set; } = 10;

    /// <summary>Producer batching delay, in milliseconds; part of every hop's latency.</summary>
    [Range(0, 1_000)]
    public double LingerMs { get; set; } = 5;

    /// <summary>
    /// Consumer group session timeout. Lower means a crashed instance's partitions move sooner (and, on some
    /// brokers, a restarted single instance rejoins sooner); higher tolerates longer pauses.
    /// </summary>
    [Range(6_000, 300_000)]
    public int SessionTimeoutMs { get; set; } = 45_000;

    /// <summary>How many of an author's newest posts a new follower receives.</summary>
    [Range(0, 1000)]
    public int BackfillSize { get; set; } = 20;

    /// <summary>Entries kept in each user's stored feed (newest first out of the cap).</summary>
    [Range(1, 100_000)]
    public int FeedSize { get; set; } = 800;

    /// <summary>
    /// Memory for all RocksDB stores of the process together, in MiB: half for memtables (write buffers, flushed
    /// to disk when full), half for the block cache. Shared by every store and task.
    /// </summary>
    [Range(16, 65_536)]
    public int RocksDbMemoryMb { get; set; } = 256;

    /// <summary>
    /// Liveness: when input keeps arriving on this instance's partitions but nothing is processed, a stream thread
    /// runs no task heartbeat, or the instance holds no tasks while input waits and no instance of the group
    /// writes anything, for this long while RUNNING, the processor exits with code 1 for its supervisor to restart
    /// it. At least three commit intervals; zero turns the watchdog off.
    /// </summary>
    public TimeSpan StallTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Create missing topics at start (AdminClient). Turn off where topics are managed elsewhere.</summary>
    public bool ProvisionTopics { get; set; } = true;

    [Range(1, 10_000)]
    public int TopicPartitions { get; set; } = 12;

    [Range(1, 10)]
    public short ReplicationFactor { get; set; } = 3;

    /// <summary>How long feed.updates keeps records; bounds how far back a subscriber cursor can resume.</summary>
    public TimeSpan FeedUpdatesRetention { get; set; } = TimeSpan.FromDays(7);
}
