using Microsoft.Extensions.Options;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// One timer for all subscriptions: each tick enqueues a heartbeat marker per subscription, and each stream
/// writer turns it into a heartbeat carrying its own cursor and lag. No per-subscription timer exists.
/// </summary>
public sealed class HeartbeatTicker : BackgroundService
{
    private readonly SubscriberRegistry _registry;
    private readonly TimeSpan _interval;

    public HeartbeatTicker(SubscriberRegistry registry, IOptions<EdgeOptions> options)
    {
        _registry = registry;
        _interval = options.Value.HeartbeatInterval;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_interval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            _registry.PulseAll();
        }
    }
}
