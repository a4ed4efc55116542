using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using Feed.V1;
using Microsoft.Extensions.Options;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>An inclusive range of feed.updates partitions.</summary>
public readonly record struct PartitionRange(int First, int Last)
{
    public bool Contains(int partition) => partition >= First && partition <= Last;

    public override string ToString() => $"partitions {First}-{Last}";
}

/// <summary>
/// Why a subscription was not registered. <see cref="ShuttingDown"/> refusals are retryable at once (on another
/// instance, or this one once it is back); the others mean a limit was reached.
/// </summary>
public sealed record SubscriptionRefusal(string Reason, bool ShuttingDown);

/// <summary>A service's subscription to every update of a partition range.</summary>
public sealed record PartitionSubscription(PartitionRange Range, Subscription<PartitionFeedEvent> Subscription);

/// <summary>
/// Who is subscribed to what. The dispatch loop looks a recipient up once per feed update and hands the same
/// immutable event to each of that user's subscriptions, and one shared event to every partition subscription
/// covering the update's partition. Registration swaps small immutable arrays, so the dispatch path takes no lock.
/// </summary>
public sealed class SubscriberRegistry
{
    private static readonly SubscriptionRefusal ShuttingDownRefusal = new("the edge is shutting down; resubscribe with the last cursor received", ShuttingDown: true);

    private readonly ConcurrentDictionary<string, ImmutableArray<Subscription<FeedEvent>>> _byUser = new(StringComparer.Ordinal);
    private readonly Lock _partitionGate = new();
    private readonly IOptionsMonitor<EdgeOptions> _options;
    private readonly EdgeMetrics _metrics;
    private ImmutableArray<PartitionSubscription> _partitionSubscriptions = [];
    private int _count;
    private bool _closed;

    public SubscriberRegistry(IOptionsMonitor<EdgeOptions> options, EdgeMetrics metrics)
    {
        _options = options;
        _metrics = metrics;
        metrics.ObserveQueuedEvents(QueuedEvents);
    }

    /// <summary>
    /// Open subscriptions of both kinds. Registrations reserve their place here before they are checked against the
    /// limit, so while some are being refused it can read higher for a moment than what is registered.
    /// </summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>
    /// Registers a subscription to a user's feed, or returns null (with why) when the user or the process already
    /// holds its maximum, or the edge is shutting down. Takes no lock: after an edge restart thousands of
    /// resubscriptions arrive at once, and a process-wide lock had them spinning on each other (9 % of the edge's
    /// CPU in a 10,000-subscriber resume storm).
    /// </summary>
    public Subscription<FeedEvent>? TryAdd(string userId, out SubscriptionRefusal? refusal)
    {
        var options = _options.CurrentValue;
        refusal = Reserve(options);
        if (refusal is not null)
        {
            return null;
        }

        var subscription = new Subscription<FeedEvent>(userId, options.SubscriberBufferSize, options.SlowSubscriberGrace);
        while (true)
        {
            if (_byUser.TryGetValue(userId, out var current))
            {
                if (current.Length >= options.MaxSubscriptionsPerUser)
                {
                    Interlocked.Decrement(ref _count);
                    refusal = new SubscriptionRefusal($"this user already holds the maximum of {options.MaxSubscriptionsPerUser} concurrent subscriptions (Edge:MaxSubscriptionsPerUser); close one before opening another", ShuttingDown: false);
                    return null;
                }

                if (_byUser.TryUpdate(userId, current.Add(subscription), current))
                {
                    break;
                }
            }
            else if (_byUser.TryAdd(userId, [subscription]))
            {
                break;
            }
        }

        // Close() sets the flag, then completes what it finds registered: a registration either sees the flag here
        // or is found and completed there (both interlocked, so neither can miss the other).
        if (Volatile.Read(ref _closed))
        {
            Unregister(subscription);
            Interlocked.Decrement(ref _count);
            refusal = ShuttingDownRefusal;
            return null;
        }

        _metrics.SubscriberAdded();
        return subscription;
    }

    public void Remove(Subscription<FeedEvent> subscription)
    {
        if (Unregister(subscription))
        {
            Removed();
        }
    }

    /// <summary>Registers a service subscription to a partition range, or returns null (with why) at a process-wide maximum or during shutdown.</summary>
    public PartitionSubscription? TryAdd(PartitionRange range, out SubscriptionRefusal? refusal)
    {
        var options = _options.CurrentValue;
        lock (_partitionGate)
        {
            refusal = _partitionSubscriptions.Length >= options.MaxPartitionSubscriptions
                ? new SubscriptionRefusal($"this edge already serves its maximum of {options.MaxPartitionSubscriptions} partition subscriptions (Edge:MaxPartitionSubscriptions); close one or use another instance", ShuttingDown: false)
                : Reserve(options);
            if (refusal is not null)
            {
                return null;
            }

            var subscription = new PartitionSubscription(range, new Subscription<PartitionFeedEvent>(range.ToString(), options.PartitionSubscriberBufferSize, options.SlowSubscriberGrace));
            ImmutableInterlocked.Update(ref _partitionSubscriptions, all => all.Add(subscription));
            if (Volatile.Read(ref _closed))
            {
                ImmutableInterlocked.Update(ref _partitionSubscriptions, all => all.Remove(subscription));
                Interlocked.Decrement(ref _count);
                refusal = ShuttingDownRefusal;
                return null;
            }

            _metrics.SubscriberAdded();
            return subscription;
        }
    }

    public void Remove(PartitionSubscription subscription)
    {
        lock (_partitionGate)
        {
            var before = _partitionSubscriptions;
            ImmutableInterlocked.Update(ref _partitionSubscriptions, all => all.Remove(subscription));
            if (_partitionSubscriptions.Length != before.Length)
            {
                Removed();
            }
        }
    }

    public bool HasSubscribers(string userId) => _byUser.ContainsKey(userId);

    /// <summary>The user's open subscriptions (diagnostics and tests).</summary>
    public IReadOnlyList<Subscription<FeedEvent>> SubscriptionsOf(string userId) => _byUser.GetValueOrDefault(userId, []);

    public bool HasSubscribers(int partition)
    {
        foreach (var subscription in _partitionSubscriptions)
        {
            if (subscription.Range.Contains(partition))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Hands one event to every subscription of <paramref name="userId"/>; never blocks.</summary>
    public void Dispatch(string userId, Delivery<FeedEvent> delivery)
    {
        if (!_byUser.TryGetValue(userId, out var subscriptions))
        {
            return;
        }

        foreach (var subscription in subscriptions)
        {
            Enqueue(subscription, delivery);
        }
    }

    /// <summary>Hands one event to every partition subscription covering <paramref name="partition"/>; never blocks.</summary>
    public void Dispatch(int partition, Delivery<PartitionFeedEvent> delivery)
    {
        foreach (var subscription in _partitionSubscriptions)
        {
            if (subscription.Range.Contains(partition))
            {
                Enqueue(subscription.Subscription, delivery);
            }
        }
    }

    /// <summary>
    /// Asks one slice of the subscriptions for a heartbeat: those whose identity hash falls in
    /// <paramref name="slice"/> of <paramref name="slices"/>. Each subscription is in the same slice for its life.
    /// </summary>
    public void PulseSlice(int slice, int slices)
    {
        // The dictionary itself, not its Values: those are copied into a new array of every user's entry per call.
        foreach (var (_, subscriptions) in _byUser)
        {
            foreach (var subscription in subscriptions)
            {
                if (InSlice(subscription, slice, slices))
                {
                    subscription.Pulse();
                }
            }
        }

        foreach (var subscription in _partitionSubscriptions)
        {
            if (InSlice(subscription.Subscription, slice, slices))
            {
                subscription.Subscription.Pulse();
            }
        }
    }

    /// <summary>
    /// Shutdown: refuses every later subscription and ends every open one; each stream closes with a resumable
    /// status. Without the refusal, a client that resubscribed between the two (on a connection the server has not
    /// yet sent GOAWAY on) would register a stream that no longer receives updates and waits out the host's
    /// shutdown timeout.
    /// </summary>
    public void Close()
    {
        Interlocked.Exchange(ref _closed, true);
        CompleteAll();
    }

    /// <summary>Ends every open subscription; each stream closes with a resumable status and the client resubscribes.</summary>
    public void CompleteAll()
    {
        foreach (var (_, subscriptions) in _byUser)
        {
            foreach (var subscription in subscriptions)
            {
                subscription.Complete();
            }
        }

        foreach (var subscription in _partitionSubscriptions)
        {
            subscription.Subscription.Complete();
        }
    }

    /// <summary>Events queued in all subscriber buffers: what slow readers hold in memory right now.</summary>
    public long QueuedEvents()
    {
        long queued = 0;
        foreach (var (_, subscriptions) in _byUser)
        {
            foreach (var subscription in subscriptions)
            {
                queued += subscription.Queue.Count;
            }
        }

        foreach (var subscription in _partitionSubscriptions)
        {
            queued += subscription.Subscription.Queue.Count;
        }

        return queued;
    }

    private void Enqueue<TEvent>(Subscription<TEvent> subscription, Delivery<TEvent> delivery)
        where TEvent : class
    {
        if (!subscription.TryEnqueue(delivery))
        {
            _metrics.Dropped(DropReasons.SubscriberOverflow);
        }
    }

    private bool Unregister(Subscription<FeedEvent> subscription)
    {
        while (_byUser.TryGetValue(subscription.Owner, out var current))
        {
            var next = current.Remove(subscription);
            if (next.Length == current.Length)
            {
                return false;
            }

            if (next.IsEmpty ? _byUser.TryRemove(KeyValuePair.Create(subscription.Owner, current)) : _byUser.TryUpdate(subscription.Owner, next, current))
            {
                return true;
            }
        }

        return false;
    }

    private static bool InSlice(object subscription, int slice, int slices) =>
        (uint)RuntimeHelpers.GetHashCode(subscription) % (uint)slices == (uint)slice;

    /// <summary>Takes one of the process's places, or says why not (shutting down, or full).</summary>
    private SubscriptionRefusal? Reserve(EdgeOptions options)
    {
        if (Volatile.Read(ref _closed))
        {
            return ShuttingDownRefusal;
        }

        if (Interlocked.Increment(ref _count) > options.MaxSubscriptions)
        {
            Interlocked.Decrement(ref _count);
            return new SubscriptionRefusal($"this edge process already holds its maximum of {options.MaxSubscriptions} subscriptions (Edge:MaxSubscriptions); retry on another instance", ShuttingDown: false);
        }

        return null;
    }

    private void Removed()
    {
        Interlocked.Decrement(ref _count);
        _metrics.SubscriberRemoved();
    }
}
