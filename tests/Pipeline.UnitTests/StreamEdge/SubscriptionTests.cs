using Pipeline.StreamEdge.Delivery;

namespace Pipeline.UnitTests.StreamEdge;

public sealed class SubscriptionTests
{
    [Fact]
    public void FullQueue_Overflows_AndCancelsTheWriter()
    {
        var subscription = new Subscription<string>("alice", capacity: 2);

        Assert.True(subscription.TryEnqueue(new Delivery<string>("a", 1)));
        Assert.True(subscription.TryEnqueue(new Delivery<string>("b", 2)));
        Assert.False(subscription.TryEnqueue(new Delivery<string>("c", 3)));

        Assert.True(subscription.Overflowed);
        Assert.True(subscription.OverflowToken.IsCancellationRequested);

        // Later events still miss it and still count as dropped until the stream is removed.
        Assert.False(subscription.TryEnqueue(new Delivery<string>("d", 4)));
    }

    [Fact]
    public async Task Overflow_WithAGrace_CancelsTheWriterOnlyAfterIt()
    {
        var subscription = new Subscription<string>("alice", capacity: 1, stuckWriteGrace: TimeSpan.FromMilliseconds(300));
        subscription.TryEnqueue(new Delivery<string>("a", 1));
        var cutOff = System.Diagnostics.Stopwatch.StartNew();

        Assert.False(subscription.TryEnqueue(new Delivery<string>("b", 2)));

        // Cut off at once (the handler stops writing and ends the stream ABORTED), but a write in flight keeps its
        // chance to finish until the grace is over.
        Assert.True(subscription.Overflowed);
        var cancelled = new TaskCompletionSource();
        using var registration = subscription.OverflowToken.Register(() => cancelled.TrySetResult());
        Assert.False(subscription.OverflowToken.IsCancellationRequested && cutOff.Elapsed < TimeSpan.FromMilliseconds(300));
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(cutOff.Elapsed >= TimeSpan.FromMilliseconds(250), $"cancelled after {cutOff.Elapsed.TotalMilliseconds} ms");
    }

    [Fact]
    public async Task Completed_WithEventsQueued_IsNoOverflow_AndTheReaderDrainsThem()
    {
        var subscription = new Subscription<string>("alice", capacity: 4);
        subscription.TryEnqueue(new Delivery<string>("a", 1));
        subscription.TryEnqueue(new Delivery<string>("b", 2));

        subscription.Complete();

        // The dispatch loop may still hand it events until the handler removes it: they are not queued, and the
        // stream must not be cut as overflowed (that reset the client's stream with CANCEL).
        Assert.True(subscription.TryEnqueue(new Delivery<string>("c", 3)));
        Assert.False(subscription.Overflowed);
        Assert.False(subscription.OverflowToken.IsCancellationRequested);

        var drained = new List<string>();
        while (await subscription.Queue.WaitToReadAsync(CancellationToken.None))
        {
            while (subscription.Queue.TryRead(out var delivery))
            {
                drained.Add(delivery.Event!);
            }
        }

        Assert.Equal(["a", "b"], drained);
    }

    [Fact]
    public async Task CompleteRacingWithDispatch_BelowCapacity_NeverOverflows()
    {
        for (var round = 0; round < 2_000; round++)
        {
            var subscription = new Subscription<string>("alice", capacity: 8);
            subscription.TryEnqueue(new Delivery<string>("queued", 0));
            using var start = new Barrier(2);
            var dispatch = Task.Run(() =>
            {
                start.SignalAndWait();
                for (var i = 1; i < 8; i++)
                {
                    subscription.TryEnqueue(new Delivery<string>("live", i));
                }
            });
            var complete = Task.Run(() =>
            {
                start.SignalAndWait();
                subscription.Complete();
            });
            await Task.WhenAll(dispatch, complete);

            Assert.False(subscription.Overflowed, $"round {round}: a completed subscription below its capacity was read as overflowed");
            Assert.False(subscription.OverflowToken.IsCancellationRequested);
        }
    }
}
