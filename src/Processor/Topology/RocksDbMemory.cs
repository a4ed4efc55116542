using RocksDbSharp;
using Streamiz.Kafka.Net.State;

namespace Pipeline.Processor.Topology;

/// <summary>
/// One memory bound for every RocksDB store of a processor: a write-buffer manager that makes RocksDB flush the
/// largest memtables once all of them together exceed half the budget, and one block cache for the other half.
/// Without it each store (stores × partitions of them) takes Streamiz's per-store defaults: up to 3 × 16 MiB of
/// memtables and a 50 MiB cache each.
/// </summary>
public sealed class RocksDbMemory
{
    private readonly IntPtr _writeBufferManager;
    private readonly Cache _blockCache;

    public RocksDbMemory(int megabytes)
    {
        var half = (ulong)megabytes * 1024 * 1024 / 2;
        _blockCache = Cache.CreateLru(half);
        _writeBufferManager = Native.Instance.rocksdb_write_buffer_manager_create(new UIntPtr(half), 0);
    }

    /// <summary>For <c>StreamConfig.RocksDbConfigHandler</c>: applied to every store as it opens.</summary>
    public void Apply(string storeName, RocksDbOptions options)
    {
        var table = new BlockBasedTableOptions();
        table.SetBlockCache(_blockCache.Handle);
        table.SetBlockSize(4096);
        table.SetFilterPolicy(BloomFilterPolicy.Create());
        options.SetBlockBasedTableFactory(table);
        options.SetWriteBufferManager(_writeBufferManager);
    }
}
