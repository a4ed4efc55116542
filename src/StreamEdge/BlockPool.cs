using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;

namespace Pipeline.StreamEdge;

/// <summary>
/// Kestrel's buffers: pinned 4 KiB blocks, reused, like Kestrel's own pool, but one that gives its free blocks
/// back when asked. A subscribe burst needs one block for every stream whose request the handlers have not read
/// yet; with 50,000 streams opened at once Kestrel's pool kept 40–120 MiB of free blocks afterwards (0.8–2.5 KiB per
/// subscriber) and returned about 1 MiB per 30 s. <see cref="Trim"/> releases the blocks that stayed free for a
/// whole trim window (<see cref="BurstCompactor"/> calls it every window, and trims every free block before it
/// compacts after a burst); a released block is garbage for the next full collection.
/// </summary>
public sealed class BlockPool : MemoryPool<byte>
{
    public const int BlockSize = 4096;

    private readonly ConcurrentQueue<Block> _free = new();
    private int _freeCount;
    private int _lowWater;
    private int _disposed;

    public override int MaxBufferSize => BlockSize;

    /// <summary>Free blocks held, in bytes.</summary>
    public long FreeBytes => (long)Volatile.Read(ref _freeCount) * BlockSize;

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_free.TryDequeue(out var block))
        {
            var free = Interlocked.Decrement(ref _freeCount);
            if (free < Volatile.Read(ref _lowWater))
            {
                // A racy minimum (two rents may both lower it, the higher last): a trim may then release a block or
                // two the window did need, which are allocated again.
                Volatile.Write(ref _lowWater, free);
            }

            return block;
        }

        Volatile.Write(ref _lowWater, 0);
        return new Block(this);
    }

    /// <summary>
    /// Releases the free blocks that no rent needed since the last trim (all of them with <paramref name="all"/>);
    /// returns the bytes released. Call it from one thread.
    /// </summary>
    public long Trim(bool all = false)
    {
        var release = all ? Volatile.Read(ref _freeCount) : Volatile.Read(ref _lowWater);
        var released = 0;
        while (released < release && _free.TryDequeue(out _))
        {
            Interlocked.Decrement(ref _freeCount);
            released++;
        }

        Volatile.Write(ref _lowWater, Volatile.Read(ref _freeCount));
        return (long)released * BlockSize;
    }

    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _free.Clear();
            Volatile.Write(ref _freeCount, 0);
        }
    }

    private void Return(Block block)
    {
        if (Volatile.Read(ref _disposed) == 0)
        {
            _free.Enqueue(block);
            Interlocked.Increment(ref _freeCount);
        }
    }

    private sealed class Block(BlockPool pool) : IMemoryOwner<byte>
    {
        // On the pinned-object heap, so a socket operation pins nothing; the Memory knows it is pinned.
        public Memory<byte> Memory { get; } = MemoryMarshal.CreateFromPinnedArray(GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true), 0, BlockSize);

        public void Dispose() => pool.Return(this);
    }
}

/// <summary>Gives Kestrel <see cref="BlockPool"/>s (it asks for one per socket I/O queue) and lets the edge trim them all.</summary>
public sealed class BlockPools : IMemoryPoolFactory<byte>
{
    private readonly ConcurrentDictionary<BlockPool, bool> _pools = new();

    public BlockPools(EdgeMetrics? metrics = null) => metrics?.ObserveBlockPools(() => FreeBytes);

    /// <summary>Free blocks held by every pool, in bytes.</summary>
    public long FreeBytes => _pools.Keys.Sum(pool => pool.FreeBytes);

    public MemoryPool<byte> Create(MemoryPoolOptions? options = null)
    {
        var pool = new BlockPool();
        _pools.TryAdd(pool, true);
        return pool;
    }

    /// <summary>Trims every pool (<see cref="BlockPool.Trim"/>) and forgets those Kestrel has disposed; returns the bytes released. Call it from one thread.</summary>
    public long Trim(bool all = false)
    {
        var released = 0L;
        foreach (var pool in _pools.Keys)
        {
            if (pool.IsDisposed)
            {
                _pools.TryRemove(pool, out _);
                continue;
            }

            released += pool.Trim(all);
        }

        return released;
    }
}
