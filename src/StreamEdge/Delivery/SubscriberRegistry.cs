using System.Collections.Concurrent;
using System.Collections.Immutable;
using Microsoft.Extensions.Options;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// Who is subscribed to which feed. The dispatch loop looks a recipient up once per feed update and hands the
/// same immutable event to each of that user's subscriptions; registration swaps small immutable arrays so the
/// lookup path takes no lock.
/// </summary>
public sealed class SubscriberRegistry
{
    private readonly ConcurrentDictionary<string, ImmutableArray<Subscription>> _byUser = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly IOptionsMonitor<EdgeOptions> _options;
    private readonly EdgeMetrics _metrics;
    private int _count;

    public SubscriberRegistry(IOptionsMonitor<EdgeOptions> options, EdgeMetrics metrics)
    {
        _options = options;
        _metrics = metrics;
    }

    public int Count => Volatile.Read(ref _count);

    /// <summary>Registers a subscription, or returns null when the user already holds the maximum.</summary>
    public Subscription? TryAdd(string userId)
    {
        var options = _options.CurrentValue;
        lock (_gate)
        {
            var current = _byUser.GetValueOrDefault(userId, ImmutableArray<Subscription>.Empty);
            if (current.Length >= options.MaxSubscriptionsPerUser)
            {
                return null;
            }

            var subscription = new Subscription(userId, options.SubscriberBufferSize);
            _byUser[userId] = current.Add(subscription);
            _count++;
            _metrics.SubscriberAdded();
            return subscription;
        }
    }

    public void Remove(Subscription subscription)
    {
        lock (_gate)
        {
            if (!_byUser.TryGetValue(subscription.UserId, out var current))
            {
                return;
            }

            var next = current.Remove(subscription);
            if (next.Length == current.Length)
            {
                return;
            }

            if (next.IsEmpty)
            {
                _byUser.TryRemove(subscription.UserId, out _);
            }
            else
            {
                _byUser[subscription.UserId] = next;
            }

            _count--;
            _metrics.SubscriberRemoved();
        }
    }

    public bool HasSubscribers(string userId) => _byUser.ContainsKey(userId);

    /// <summary>Hands one event to every subscription of <paramref name="userId"/>; never blocks.</summary>
    public void Dispatch(string userId, Delivery delivery)
    {
        if (!_byUser.TryGetValue(userId, out var subscriptions))
        {
            return;
        }

        foreach (var subscription in subscriptions)
        {
            if (!subscription.TryEnqueue(delivery))
            {
                _metrics.Dropped(DropReasons.SubscriberOverflow);
            }
        }
    }

    /// <summary>Asks every subscription for a heartbeat.</summary>
    public void PulseAll()
    {
        foreach (var subscriptions in _byUser.Values)
        {
            foreach (var subscription in subscriptions)
            {
                subscription.Pulse();
            }
        }
    }

    /// <summary>Ends every subscription (graceful shutdown); each stream then closes with a resumable status.</summary>
    public void CompleteAll()
    {
        foreach (var subscriptions in _byUser.Values)
        {
            foreach (var subscription in subscriptions)
            {
                subscription.Complete();
            }
        }
    }
}
