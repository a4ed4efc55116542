using Pipeline.StreamEdge.Delivery;

namespace Pipeline.UnitTests.StreamEdge;

public sealed class DeliveryBufferTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static async Task<List<T>> DrainAsync<T>(DeliveryBuffer<T> buffer, CancellationToken cancellationToken = default)
    {
        var read = new List<T>();
        while (await buffer.WaitToReadAsync(cancellationToken))
        {
            while (buffer.TryRead(out var item))
            {
                read.Add(item);
            }
        }

        return read;
    }

    [Fact]
    public void Writes_AreReadInOrder_UpToTheCapacity_AcrossGrowthAndWrapAround()
    {
        var buffer = new DeliveryBuffer<int>(capacity: 10);
        var next = 0;
        var expected = 0;
        for (var round = 0; round < 50; round++)
        {
            // Fill to the capacity (the array grows 4 -> 8 -> 10), then read part of it so the head wraps around.
            while (buffer.TryWrite(next))
            {
                next++;
            }

            Assert.Equal(10, buffer.Count);
            for (var i = 0; i < 3 + (round % 7); i++)
            {
                Assert.True(buffer.TryRead(out var item));
                Assert.Equal(expected++, item);
            }
        }

        while (buffer.TryRead(out var item))
        {
            Assert.Equal(expected++, item);
        }

        Assert.Equal(next, expected);
        Assert.Equal(0, buffer.Count);
        Assert.False(buffer.TryRead(out _));
    }

    [Fact]
    public async Task AWaitingReader_IsWokenByAWrite_OnAnotherThread()
    {
        var buffer = new DeliveryBuffer<string>(capacity: 4);
        var wait = buffer.WaitToReadAsync(CancellationToken.None).AsTask();
        Assert.False(wait.IsCompleted);

        var writerThread = new Thread(() => buffer.TryWrite("a"));
        writerThread.Start();
        writerThread.Join();

        Assert.True(await wait.WaitAsync(Timeout));
        Assert.True(buffer.TryRead(out var item));
        Assert.Equal("a", item);
    }

    /// <summary>The dispatch loop writes; a reader's continuation (a response write) must not run on its thread.</summary>
    [Fact]
    public async Task TheReaderContinuation_NeverRunsOnTheWritersThread()
    {
        var buffer = new DeliveryBuffer<int>(capacity: 4);

        async Task<int> ThreadAfterTheWait()
        {
            // No captured context: without asynchronous continuations this would resume inline on the writer.
            await buffer.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false);
            return Environment.CurrentManagedThreadId;
        }

        var continued = ThreadAfterTheWait();
        Assert.False(continued.IsCompleted);
        var writerId = 0;
        var writer = new Thread(() =>
        {
            writerId = Environment.CurrentManagedThreadId;
            buffer.TryWrite(1);
        });
        writer.Start();
        writer.Join();

        Assert.NotEqual(writerId, await continued.WaitAsync(Timeout));
    }

    [Fact]
    public async Task Completion_WakesAWaitingReaderWithFalse_AndQueuedItemsAreStillRead()
    {
        var empty = new DeliveryBuffer<int>(capacity: 4);
        var wait = empty.WaitToReadAsync(CancellationToken.None).AsTask();
        Assert.True(empty.TryComplete());
        Assert.False(await wait.WaitAsync(Timeout));
        Assert.False(empty.TryComplete());
        Assert.True(empty.IsCompleted);

        var full = new DeliveryBuffer<int>(capacity: 4);
        full.TryWrite(1);
        full.TryWrite(2);
        full.TryComplete();
        Assert.False(full.TryWrite(3));
        Assert.Equal([1, 2], await DrainAsync(full).WaitAsync(Timeout));
    }

    [Fact]
    public async Task ACancelledWait_Throws_AndTheBufferKeepsWorking()
    {
        var buffer = new DeliveryBuffer<int>(capacity: 4);
        using var cancel = new CancellationTokenSource();
        var wait = buffer.WaitToReadAsync(cancel.Token).AsTask();

        await cancel.CancelAsync();

        var thrown = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Timeout));
        Assert.Equal(cancel.Token, thrown.CancellationToken);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => buffer.WaitToReadAsync(cancel.Token).AsTask());

        // A write after the cancellation is kept for the next wait, which a later cancellation must not disturb.
        Assert.True(buffer.TryWrite(7));
        using var later = new CancellationTokenSource();
        Assert.True(await buffer.WaitToReadAsync(later.Token));
        Assert.True(buffer.TryRead(out var item));
        Assert.Equal(7, item);
        var next = buffer.WaitToReadAsync(later.Token).AsTask();
        buffer.TryWrite(8);
        Assert.True(await next.WaitAsync(Timeout));
        await later.CancelAsync();
        Assert.True(buffer.TryRead(out item));
        Assert.Equal(8, item);
    }

    [Fact]
    public async Task ASecondConcurrentWait_IsRefused()
    {
        var buffer = new DeliveryBuffer<int>(capacity: 4);
        var first = buffer.WaitToReadAsync(CancellationToken.None).AsTask();

        await Assert.ThrowsAsync<InvalidOperationException>(() => buffer.WaitToReadAsync(CancellationToken.None).AsTask());

        buffer.TryWrite(1);
        Assert.True(await first.WaitAsync(Timeout));
    }

    /// <summary>Four writer threads race one reader that waits whenever it runs dry: every item read once, in each writer's order.</summary>
    [Fact]
    public async Task ConcurrentWriters_AndAWaitingReader_LoseAndRepeatNothing()
    {
        const int Writers = 4;
        const int PerWriter = 50_000;
        var buffer = new DeliveryBuffer<(int Writer, int Sequence)>(capacity: 64);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var reader = Task.Run(() => DrainAsync(buffer, cancel.Token));
        var threads = Enumerable.Range(0, Writers).Select(writer => new Thread(() =>
        {
            for (var sequence = 0; sequence < PerWriter;)
            {
                if (buffer.TryWrite((writer, sequence)))
                {
                    sequence++;
                }
                else
                {
                    Thread.Yield(); // full: the dispatch loop would cut the subscriber off; here the writer retries
                }
            }
        })).ToList();
        threads.ForEach(thread => thread.Start());
        threads.ForEach(thread => thread.Join());
        buffer.TryComplete();

        var read = await reader.WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(Writers * PerWriter, read.Count);
        foreach (var group in read.GroupBy(item => item.Writer))
        {
            Assert.Equal(Enumerable.Range(0, PerWriter), group.Select(item => item.Sequence));
        }
    }
}
