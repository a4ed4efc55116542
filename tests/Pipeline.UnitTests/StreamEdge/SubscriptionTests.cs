using Pipeline.StreamEdge.Delivery;

namespace Pipeline.UnitTests.StreamEdge;

public sealed class SubscriptionTests
{
    /// <summary>One token per stream: the client going away cancels it as an overflow does, until the stream lets go.</summary>
    [Fact]
    public async Task TheRequestsAbort_CancelsTheStreamToken_UntilTheRegistrationIsDisposed()
    {
        var aborted = new Subscription<string>("alice", capacity: 2);
        using var request = new CancellationTokenSource();
        using (aborted.CancelWith(request.Token))
        {
            Assert.False(aborted.Token.IsCancellationRequested);
            await request.CancelAsync();
            Assert.True(aborted.Token.IsCancellationRequested);
            Assert.False(aborted.Overflowed);
        }

        var ended = new Subscription<string>("bob", capacity: 2);
        using var laterRequest = new CancellationTokenSource();
        ended.CancelWith(laterRequest.Token).Dispose();
        await laterRequest.CancelAsync();
        Assert.False(ended.Token.IsCancellationRequested);
    }

    [Fact]
    public void FullQueue_Overflows_AndCancelsTheWriter()
    {
        var subscription = new Subscription<string>("alice", capacity: 2);

        Assert.True(subscription.TryEnqueue(new Delivery<string>("a", 0, 1)));
        Assert.True(subscription.TryEnqueue(new Delivery<string>("b", 0, 2)));
        Assert.False(subscription.TryEnqueue(new Delivery<string>("c", 0, 3)));

        Assert.True(subscription.Overflowed);
        Assert.True(subscription.Token.IsCancellationRequested);

        // Later events still miss it and still count as dropped until the stream is removed.
        Assert.False(subscription.TryEnqueue(new Delivery<string>("d", 0, 4)));
    }

    [Fact]
    public async Task Overflow_WithAGrace_CancelsTheWriterOnlyAfterIt()
    {
        var subscription = new Subscription<string>("alice", capacity: 1, stuckWriteGrace: TimeSpan.FromMilliseconds(300));
        subscription.TryEnqueue(new Delivery<string>("a", 0, 1));
        var cutOff = System.Diagnostics.Stopwatch.StartNew();

        Assert.False(subscription.TryEnqueue(new Delivery<string>("b", 0, 2)));

        // Cut off at once (the handler stops writing and ends the stream ABORTED), but a write in flight keeps its
        // chance to finish until the grace is over.
        Assert.True(subscription.Overflowed);
        var cancelled = new TaskCompletionSource();
        using var registration = subscription.Token.Register(() => cancelled.TrySetResult());
        Assert.False(subscription.Token.IsCancellationRequested && cutOff.Elapsed < TimeSpan.FromMilliseconds(300));
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(cutOff.Elapsed >= TimeSpan.FromMilliseconds(250), $"cancelled after {cutOff.Elapsed.TotalMilliseconds} ms");
    }

    [Fact]
    public async Task Completed_WithEventsQueued_IsNoOverflow_AndTheReaderDrainsThem()
    {
        var subscription = new Subscription<string>("alice", capacity: 4);
        subscription.TryEnqueue(new Delivery<string>("a", 0, 1));
        subscription.TryEnqueue(new Delivery<string>("b", 0, 2));

        subscription.Complete();

        // The dispatch loop may still hand it events until the handler removes it: they are not queued, and the
        // stream must not be cut as overflowed (that reset the client's stream with CANCEL).
        Assert.True(subscription.TryEnqueue(new Delivery<string>("c", 0, 3)));
        Assert.False(subscription.Overflowed);
        Assert.False(subscription.Token.IsCancellationRequested);

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
            subscription.TryEnqueue(new Delivery<string>("queued", 0, 0));
            using var start = new Barrier(2);
            var dispatch = Task.Run(() =>
            {
                start.SignalAndWait();
                for (var i = 1; i < 8; i++)
                {
                    subscription.TryEnqueue(new Delivery<string>("live", 0, i));
                }
            });
            var complete = Task.Run(() =>
            {
                start.SignalAndWait();
                subscription.Complete();
            });
            await Task.WhenAll(dispatch, complete);

            Assert.False(subscription.Overflowed, $"round {round}: a completed subscription below its capacity was read as overflowed");
            Assert.False(subscription.Token.IsCancellationRequested);
        }
    }
}
