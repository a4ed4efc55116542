using System.Threading.Tasks.Sources;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// The bounded queue between the dispatch loop and one open stream: writers that never wait, and one reader that
/// does. It does what the edge used a bounded <see cref="System.Threading.Channels.Channel"/> for, in one object and
/// an array that grows with what is queued: the channel kept seven objects per stream (reader, writer, and four
/// preallocated wait operations among them), about 800 bytes per subscriber in a heap dump of 10,000 streams.
/// </summary>
/// <remarks>
/// A waiting reader is woken by the first write or by <see cref="TryComplete"/>; its continuation runs on the
/// thread pool, never on the writer's thread, so the dispatch loop does not run response writes.
/// </remarks>
public sealed class DeliveryBuffer<T> : IValueTaskSource<bool>
{
    private const int FirstSize = 4;

    /// <summary>An emptied array larger than this is let go: a burst does not pin its peak for the stream's life.</summary>
    private const int KeptWhenEmpty = 64;

    private readonly Lock _lock = new();
    private readonly int _capacity;
    private T[] _items = [];
    private int _head;
    private int _count;
    private bool _completed;
    private bool _waiting;
    private CancellationTokenRegistration _cancellation;
    private ManualResetValueTaskSourceCore<bool> _signal = new() { RunContinuationsAsynchronously = true };

    public DeliveryBuffer(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    /// <summary>Items queued now (read without the lock: for metrics and flush decisions).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>True once <see cref="TryComplete"/> ran: no more writes are accepted (queued items may remain).</summary>
    public bool IsCompleted
    {
        get
        {
            lock (_lock)
            {
                return _completed;
            }
        }
    }

    /// <summary>Queues <paramref name="item"/>; false when the queue is full or completed.</summary>
    public bool TryWrite(T item)
    {
        CancellationTokenRegistration cancellation;
        lock (_lock)
        {
            if (_completed || _count == _capacity)
            {
                return false;
            }

            if (_count == _items.Length)
            {
                Grow();
            }

            _items[(_head + _count) % _items.Length] = item;
            _count++;
            if (!TakeWaiter(out cancellation))
            {
                return true;
            }
        }

        cancellation.Unregister();
        _signal.SetResult(true);
        return true;
    }

    /// <summary>No more writes; the reader still gets what is queued. False when already completed.</summary>
    public bool TryComplete()
    {
        CancellationTokenRegistration cancellation;
        lock (_lock)
        {
            if (_completed)
            {
                return false;
            }

            _completed = true;
            if (!TakeWaiter(out cancellation))
            {
                return true;
            }
        }

        // A reader waits only on an empty queue: it learns that nothing more will come.
        cancellation.Unregister();
        _signal.SetResult(false);
        return true;
    }

    public bool TryRead(out T item)
    {
        lock (_lock)
        {
            if (_count == 0)
            {
                item = default!;
                return false;
            }

            item = _items[_head];
            _items[_head] = default!;
            _head = (_head + 1) % _items.Length;
            _count--;
            if (_count == 0)
            {
                _head = 0;
                if (_items.Length > KeptWhenEmpty)
                {
                    _items = [];
                }
            }

            return true;
        }
    }

    /// <summary>
    /// True when an item can be read, false when the queue is completed and empty; waits otherwise. One reader:
    /// a second wait while one is pending is refused.
    /// </summary>
    public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<bool>(cancellationToken);
        }

        short version;
        lock (_lock)
        {
            if (_count > 0)
            {
                return new ValueTask<bool>(true);
            }

            if (_completed)
            {
                return new ValueTask<bool>(false);
            }

            if (_waiting)
            {
                throw new InvalidOperationException("A delivery buffer has one reader; it is already waiting.");
            }

            _signal.Reset();
            version = _signal.Version;
            _waiting = true;
        }

        if (cancellationToken.CanBeCanceled)
        {
            var cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((DeliveryBuffer<T>)state!).Cancel(token), this);
            var stale = false;
            lock (_lock)
            {
                // The wait may have ended (a write, completion or the cancellation itself) before the registration was kept.
                if (_waiting && _signal.Version == version)
                {
                    _cancellation = cancellation;
                }
                else
                {
                    stale = true;
                }
            }

            if (stale)
            {
                cancellation.Unregister();
            }
        }

        return new ValueTask<bool>(this, version);
    }

    bool IValueTaskSource<bool>.GetResult(short token) => _signal.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _signal.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _signal.OnCompleted(continuation, state, token, flags);

    private void Cancel(CancellationToken token)
    {
        lock (_lock)
        {
            if (!TakeWaiter(out _))
            {
                return;
            }
        }

        _signal.SetException(new OperationCanceledException(token));
    }

    /// <summary>Under the lock: whether a reader waits; if so it is taken, and its cancellation is handed out.</summary>
    private bool TakeWaiter(out CancellationTokenRegistration cancellation)
    {
        cancellation = _cancellation;
        _cancellation = default;
        if (!_waiting)
        {
            return false;
        }

        _waiting = false;
        return true;
    }

    private void Grow()
    {
        var grown = new T[Math.Min(Math.Max(FirstSize, _items.Length * 2), _capacity)];
        for (var i = 0; i < _count; i++)
        {
            grown[i] = _items[(_head + i) % _items.Length];
        }

        _items = grown;
        _head = 0;
    }
}
