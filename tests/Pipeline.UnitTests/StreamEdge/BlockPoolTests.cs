using System.Buffers;
using Pipeline.StreamEdge;

namespace Pipeline.UnitTests.StreamEdge;

public sealed class BlockPoolTests
{
    private static List<IMemoryOwner<byte>> Rent(BlockPool pool, int blocks) => [.. Enumerable.Range(0, blocks).Select(_ => pool.Rent())];

    private static void Return(List<IMemoryOwner<byte>> blocks) => blocks.ForEach(block => block.Dispose());

    [Fact]
    public void Blocks_Are4KiB_AndReused_AndALargerRentIsRefused()
    {
        using var pool = new BlockPool();
        var block = pool.Rent(100);
        Assert.Equal(BlockPool.BlockSize, block.Memory.Length);
        Assert.Equal(BlockPool.BlockSize, pool.MaxBufferSize);
        var memory = block.Memory;
        block.Dispose();
        Assert.Equal(BlockPool.BlockSize, pool.FreeBytes);

        var again = pool.Rent();
        Assert.True(again.Memory.Span == memory.Span, "a returned block is rented again");
        Assert.Equal(0, pool.FreeBytes);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(BlockPool.BlockSize + 1));
    }

    [Fact]
    public void Trim_ReleasesTheBlocksNoRentNeededSinceTheLastTrim_OrAllOfThem()
    {
        using var pool = new BlockPool();
        Return(Rent(pool, 10));

        // The window that saw the 10 allocated needed them all.
        Assert.Equal(0, pool.Trim());
        Assert.Equal(10 * BlockPool.BlockSize, pool.FreeBytes);

        // This window needs 3 at most: the 7 that stayed free go.
        Return(Rent(pool, 3));
        Return(Rent(pool, 2));
        Assert.Equal(7 * BlockPool.BlockSize, pool.Trim());
        Assert.Equal(3 * BlockPool.BlockSize, pool.FreeBytes);

        // A window with no rent at all releases every free block; so does trimming all.
        Assert.Equal(3 * BlockPool.BlockSize, pool.Trim());
        Return(Rent(pool, 4));
        Assert.Equal(4 * BlockPool.BlockSize, pool.Trim(all: true));
        Assert.Equal(0, pool.FreeBytes);
    }

    [Fact]
    public void Trim_LeavesRentedBlocksAlone_AndTheyComeBackToThePool()
    {
        using var pool = new BlockPool();
        var held = Rent(pool, 5);
        Return(Rent(pool, 2));
        pool.Trim(all: true);

        Return(held);
        Assert.Equal(5 * BlockPool.BlockSize, pool.FreeBytes);
        var rented = Rent(pool, 5);
        Assert.Equal(0, pool.FreeBytes);
        Assert.All(rented, block => Assert.Equal(BlockPool.BlockSize, block.Memory.Length));
    }

    [Fact]
    public void Pools_AreTrimmedTogether_AndADisposedOneIsForgotten_AndKeepsNothing()
    {
        var pools = new BlockPools();
        var first = (BlockPool)pools.Create();
        var second = (BlockPool)pools.Create();
        Return(Rent(first, 3));
        Return(Rent(second, 4));
        Assert.Equal(7 * BlockPool.BlockSize, pools.FreeBytes);

        var late = second.Rent();
        second.Dispose();
        late.Dispose();
        Assert.Equal(0, second.FreeBytes);
        Assert.Equal(3 * BlockPool.BlockSize, pools.Trim(all: true));
        Assert.Equal(0, pools.FreeBytes);

        Return(Rent(first, 1));
        Assert.Equal(BlockPool.BlockSize, pools.FreeBytes);
        first.Dispose();
    }

    [Fact]
    public async Task ConcurrentRentsAndReturns_LoseNoBlock_AndTrimsBetweenThemKeepTheCountTrue()
    {
        using var pool = new BlockPool();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                var blocks = Rent(pool, 8);
                blocks[0].Memory.Span.Fill(1);
                Return(blocks);
            }
        })).ToArray();
        while (!stop.IsCancellationRequested)
        {
            pool.Trim();
            await Task.Delay(5, CancellationToken.None);
        }

        await Task.WhenAll(workers);

        // Every block rented came back: the count of free blocks is what the queue holds, and renting them all
        // takes exactly that many without allocating (the pool is then empty).
        var free = (int)(pool.FreeBytes / BlockPool.BlockSize);
        Assert.InRange(free, 0, 32);
        var all = Rent(pool, free);
        Assert.Equal(0, pool.FreeBytes);
        Assert.Equal(free, all.Select(block => block.Memory).Distinct().Count());
    }
}
