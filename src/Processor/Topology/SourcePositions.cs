using Confluent.Kafka;
using Streamiz.Kafka.Net.Processors.Public;
using Streamiz.Kafka.Net.State;

namespace Pipeline.Processor.Topology;

/// <summary>
/// The offset of the last record a task applied from each of its source topics, kept in a state store that is
/// changelogged in the same transaction as the task's output. A record at or below it was applied already and is
/// skipped: the task is idempotent even when the consumer's committed offsets are lost or behind (offsets expired
/// after a long stop, a broker that does not keep transactional offset commits — librdkafka's mock — or an
/// at-least-once crash between output and offset commit), so it never re-emits a change it already made.
/// </summary>
/// <remarks>The store is per task, so one key per source topic is enough (the task owns one partition of each).</remarks>
public sealed class SourcePositions(IKeyValueStore<string, long>? store, ProcessorMetrics metrics)
{
    // What this task instance applied last, per topic: the store is read once per topic, then only written. Only this
    // task writes its store, and a task that is closed and reopened gets a new instance (Init).
    private readonly Dictionary<string, long> _applied = new(StringComparer.Ordinal);

    /// <summary>The positions kept in <paramref name="storeName"/> of the task, or none (everything admitted) for an empty name.</summary>
    public static SourcePositions For<TKey, TValue>(ProcessorContext<TKey, TValue> context, string storeName, ProcessorMetrics metrics) =>
        new(storeName.Length == 0 ? null : (IKeyValueStore<string, long>)context.GetStateStore(storeName), metrics);

    /// <summary>True, and remembered, for a record newer than the last one applied from its topic; false for a redelivery.</summary>
    public bool Admit(TopicPartitionOffset? source)
    {
        if (store is null || source is null || source.Offset.IsSpecial)
        {
            return true;
        }

        // Stored as offset + 1: the store answers 0 for a missing key.
        var next = source.Offset.Value + 1;
        if (!_applied.TryGetValue(source.Topic, out var applied))
        {
            applied = store.Get(source.Topic);
        }

        if (applied >= next)
        {
            metrics.RedeliverySkipped();
            return false;
        }

        store.Put(source.Topic, next);
        _applied[source.Topic] = next;
        return true;
    }
}

/// <summary>Passes a stream's records on unless <see cref="SourcePositions"/> says they were applied already.</summary>
public sealed class RedeliveryGuard<TValue> : ITransformer<string, TValue, string, TValue>
{
    private readonly ProcessorMetrics _metrics;
    private readonly string _storeName;
    private SourcePositions _positions = null!;

    /// <summary>Prototype for Streamiz (see <see cref="AuthorStage()"/>); never processes a record.</summary>
    public RedeliveryGuard()
    {
        _metrics = null!;
        _storeName = "";
    }

    public RedeliveryGuard(ProcessorMetrics metrics, string storeName)
    {
        _metrics = metrics;
        _storeName = storeName;
    }

    public void Init(ProcessorContext<string, TValue> context) => _positions = SourcePositions.For(context, _storeName, _metrics);

    public Record<string, TValue> Process(Record<string, TValue> record) =>
        _positions.Admit(record.TopicPartitionOffset) ? record : null!;

    public void Close()
    {
    }
}
