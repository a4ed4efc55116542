using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using Feed.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Pipeline.StreamEdge;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.MicroBenchmarks;

/// <summary>
/// The edge's live path for one feed update of a user with open subscriptions. Each operation also drains the
/// queues (what the response writers do), so the bounded queues never fill and every operation takes the same path.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
[SuppressMessage("Reliability", "CA1001", Justification = "BenchmarkDotNet owns the lifetime: [GlobalCleanup] disposes the services.")]
public class EdgeDispatchBenchmarks
{
    private readonly CursorCodec _cursors = new(Samples.CursorKey);
    private ServiceProvider _services = null!;
    private SubscriberRegistry _registry = null!;
    private Subscription<FeedEvent>[] _subscriptions = [];
    private FeedUpdate _update = null!;
    private FeedEvent _event = null!;
    private long _offset;

    [Params(1, 10, 1_000)]
    public int Subscriptions { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var options = new EdgeOptions { MaxSubscriptionsPerUser = Subscriptions };
        _registry = new SubscriberRegistry(new FixedOptionsMonitor<EdgeOptions>(options), new EdgeMetrics(_services.GetRequiredService<IMeterFactory>()));
        _subscriptions = [.. Enumerable.Range(0, Subscriptions).Select(_ => _registry.TryAdd(Samples.Recipient, out var refusal)
            ?? throw new InvalidOperationException("the registry refused a subscription: " + refusal!.Reason))];
        _update = Samples.FeedUpdate(Samples.Recipient, Samples.Post());
        _event = FeedEvents.ToFeedEvent(_update);
        _event.Cursor = _cursors.Encode(FeedCursor.At(3, 0), Samples.Recipient);
    }

    [GlobalCleanup]
    public void Cleanup() => _services.Dispose();

    /// <summary>SubscriberRegistry.Dispatch of one prepared event, plus draining each subscription's queue.</summary>
    [Benchmark(Baseline = true)]
    public int Dispatch()
    {
        _registry.Dispatch(Samples.Recipient, new Delivery<FeedEvent>(_event, 0, ++_offset));
        return Drain();
    }

    /// <summary>
    /// What FeedUpdatesConsumer does per update after the replica write: build the event, sign its cursor,
    /// dispatch (plus the drain).
    /// </summary>
    [Benchmark]
    public int ToEventEncodeDispatch()
    {
        var offset = ++_offset;
        if (_registry.HasSubscribers(_update.RecipientId))
        {
            var feedEvent = FeedEvents.ToFeedEvent(_update);
            feedEvent.Cursor = _cursors.Encode(FeedCursor.At(3, offset), _update.RecipientId);
            _registry.Dispatch(_update.RecipientId, new Delivery<FeedEvent>(feedEvent, 3, offset));
        }

        return Drain();
    }

    private int Drain()
    {
        var drained = 0;
        foreach (var subscription in _subscriptions)
        {
            while (subscription.Queue.TryRead(out _))
            {
                drained++;
            }
        }

        return drained;
    }

    private sealed class FixedOptionsMonitor<T>(T value) : IOptionsMonitor<T>
    {
        public T CurrentValue => value;

        public T Get(string? name) => value;

        public IDisposable? OnChange(Action<T, string?> listener) => null;
    }
}
