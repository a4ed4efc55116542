using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.Crosscutting;
using Streamiz.Kafka.Net.Processors;
using Streamiz.Kafka.Net.State;
using Streamiz.Kafka.Net.State.Enumerator;
using Streamiz.Kafka.Net.State.Supplier;

namespace Pipeline.Processor.Topology;

/// <summary>
/// Streamiz's RocksDB store, except that under exactly-once a commit does not flush the memtables to SST files.
/// </summary>
/// <remarks>
/// Streamiz flushes every RocksDB store synchronously at every commit (every 100 ms under exactly-once) so that
/// the local checkpoint it writes matches the store; with the write-ahead log disabled, that was the processor's
/// largest cost (docs/architecture.md, BENCHMARKS.md). Under exactly-once Streamiz writes the checkpoint only when
/// a task closes, and the processor already treats its stores as lost after any unclean stop
/// (<see cref="ExactlyOnceStateGuard"/>), so a flush at close is enough: RocksDB still flushes a memtable by itself
/// when it fills, within the memory bound of <see cref="ProcessorOptions.RocksDbMemoryMb"/>. Under at-least-once
/// Streamiz checkpoints at every commit, so the store keeps flushing at every commit.
/// </remarks>
public sealed class CommitFlushStore(IKeyValueStore<Bytes, byte[]> inner, bool flushOnCommit) : IKeyValueStore<Bytes, byte[]>
{
    public string Name => inner.Name;

    public bool Persistent => inner.Persistent;

    public bool IsLocally => inner.IsLocally;

    public bool IsOpen => inner.IsOpen;

    public void Init(ProcessorContext context, IStateStore root) => inner.Init(context, root);

    public void Flush()
    {
        if (flushOnCommit)
        {
            inner.Flush();
        }
    }

    public void Close()
    {
        if (inner.IsOpen)
        {
            inner.Flush();
        }

        inner.Close();
    }

    public byte[] Get(Bytes key) => inner.Get(key);

    public IKeyValueEnumerator<Bytes, byte[]> Range(Bytes from, Bytes to) => inner.Range(from, to);

    public IKeyValueEnumerator<Bytes, byte[]> ReverseRange(Bytes from, Bytes to) => inner.ReverseRange(from, to);

    public IEnumerable<KeyValuePair<Bytes, byte[]>> All() => inner.All();

    public IEnumerable<KeyValuePair<Bytes, byte[]>> ReverseAll() => inner.ReverseAll();

    public long ApproximateNumEntries() => inner.ApproximateNumEntries();

    public void Put(Bytes key, byte[] value) => inner.Put(key, value);

    public byte[] PutIfAbsent(Bytes key, byte[] value) => inner.PutIfAbsent(key, value);

    public void PutAll(IEnumerable<KeyValuePair<Bytes, byte[]>> entries) => inner.PutAll(entries);

    public byte[] Delete(Bytes key) => inner.Delete(key);

    /// <summary>Supplies <see cref="CommitFlushStore"/>s over Streamiz's own RocksDB store.</summary>
    public sealed class Supplier(string name, bool flushOnCommit) : IKeyValueBytesStoreSupplier
    {
        public string Name { get; set; } = name;

        public string MetricsScope => "rocksdb";

        public IKeyValueStore<Bytes, byte[]> Get() => new CommitFlushStore(new RocksDbKeyValueStore(Name, MetricsScope), flushOnCommit);
    }
}
