using System.Diagnostics.CodeAnalysis;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// An event bound for one subscription, with its feed.updates partition and offset (the offset skips what a
/// snapshot or replay already covered; both are the stream's position for its heartbeats) and when it was
/// dispatched (a <see cref="System.Diagnostics.Stopwatch"/> timestamp, 0 for none), from which the stream writer
/// times its write. A null event is the heartbeat marker: the stream writer turns it into a heartbeat with its own
/// cursor and lag.
/// </summary>
public readonly record struct Delivery<TEvent>(TEvent? Event, int Partition, long Offset, long Dispatched = 0)
    where TEvent : class
{
    [MemberNotNullWhen(false, nameof(Event))]
    public bool IsHeartbeat => Event is null;
}

/// <summary>
/// One open stream: a bounded queue between the dispatch loop (writer) and the gRPC response stream (reader).
/// The writer never waits: when the queue is full the subscription is ended as overflowed.
/// </summary>
[SuppressMessage("Reliability", "CA1001", Justification = "The stream's token source has no linked parents and at most one timer, which frees itself when it fires; disposing it would race with the apply threads dispatching to it, that timer and the request's abort cancelling it.")]
public sealed class Subscription<TEvent>
    where TEvent : class
{
    private const int OpenState = 0;
    private const int CompletedState = 1;
    private const int OverflowedState = 2;

    private readonly DeliveryBuffer<Delivery<TEvent>> _queue;
    private readonly CancellationTokenSource _cancel = new();

    /// <summary>Set once, before the queue is completed: by an overflow or by <see cref="Complete"/>.</summary>
    private int _state;

    public Subscription(string owner, int capacity, TimeSpan stuckWriteGrace = default)
    {
        Owner = owner;
        Capacity = capacity;
        StuckWriteGrace = stuckWriteGrace;
        _queue = new DeliveryBuffer<Delivery<TEvent>>(capacity);
    }

    /// <summary>The user whose feed this is, or the partition range of a service subscription.</summary>
    public string Owner { get; }

    public int Capacity { get; }

    /// <summary>True once the subscriber fell more than <see cref="Capacity"/> events behind.</summary>
    public bool Overflowed => Volatile.Read(ref _state) == OverflowedState;

    /// <summary>What the stream writer reads; the dispatch loop writes through <see cref="TryEnqueue"/> and <see cref="Pulse"/>.</summary>
    public DeliveryBuffer<Delivery<TEvent>> Queue => _queue;

    /// <summary>
    /// The stream's one cancellation: cancelled when the client goes away (see <see cref="CancelWith"/>) and
    /// <see cref="StuckWriteGrace"/> after an overflow. The response writer passes it to WriteAsync, so a client that
    /// stopped reading (and whose HTTP/2 flow-control window is exhausted) cannot keep the handler parked forever
    /// (grpc-dotnet #1422); that cancels the write, and grpc-dotnet resets the stream (CANCEL). One source per stream,
    /// where a source linked to the request's and an overflow source took two more objects and two registrations.
    /// </summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>Cancels <see cref="Token"/> when <paramref name="requestAborted"/> is; dispose the result when the stream ends.</summary>
    public CancellationTokenRegistration CancelWith(CancellationToken requestAborted) =>
        requestAborted.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), _cancel);

    /// <summary>
    /// How long a response write still in flight at an overflow may take before it is cancelled. A client that is
    /// slow but still reading gets its write through in that time, and then the stream's ABORTED status with the
    /// reason; only a client that reads nothing for that long sees its stream reset instead.
    /// </summary>
    public TimeSpan StuckWriteGrace { get; }

    /// <summary>
    /// Queues an event without blocking. Returns false, and ends the subscription, when the queue is full. An event
    /// for a subscription ended by <see cref="Complete"/> is not queued and is no loss: the client resumes from its
    /// cursor.
    /// </summary>
    public bool TryEnqueue(Delivery<TEvent> delivery)
    {
        if (_queue.TryWrite(delivery))
        {
            return true;
        }

        // Ended from the server side (Complete) with events still queued: the queue refuses writes, but it is
        // not full. Reading that as an overflow cancelled the response write in flight, which grpc-dotnet turns
        // into an HTTP/2 RST_STREAM CANCEL, and the client saw CANCELLED instead of a resumable status.
        // After an overflow, the events that miss the queue still count as dropped, as they did before.
        var state = Interlocked.CompareExchange(ref _state, OverflowedState, OpenState);
        if (state != OpenState)
        {
            return state == CompletedState;
        }

        _queue.TryComplete();
        if (StuckWriteGrace > TimeSpan.Zero)
        {
            _cancel.CancelAfter(StuckWriteGrace);
        }
        else
        {
            _cancel.Cancel();
        }

        return false;
    }

    /// <summary>Asks for a heartbeat; a full queue already tells the client the stream is alive.</summary>
    public void Pulse() => _queue.TryWrite(default);

    /// <summary>Ends the subscription from the server side (shutdown); the reader drains what is queued.</summary>
    public void Complete()
    {
        Interlocked.CompareExchange(ref _state, CompletedState, OpenState);
        _queue.TryComplete();
    }
}
