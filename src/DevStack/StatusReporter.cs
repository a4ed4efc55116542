using Pipeline.Processor;
using Pipeline.StreamEdge;

namespace Pipeline.DevStack;

/// <summary>One concise console line per interval: what went in, what came out, who is listening.</summary>
public sealed partial class StatusReporter : BackgroundService
{
    private readonly ProcessorMetrics _processor;
    private readonly EdgeMetrics _edge;
    private readonly TimeSpan _interval;
    private readonly ILogger<StatusReporter> _logger;

    public StatusReporter(ProcessorMetrics processor, EdgeMetrics edge, DevStackSettings settings, ILogger<StatusReporter> logger)
    {
        _processor = processor;
        _edge = edge;
        _interval = settings.StatusInterval;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_interval);
        var seconds = _interval.TotalSeconds;
        long lastPosts = 0, lastUpdates = 0, lastDeliveries = 0;
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            long posts = _processor.PostsIn, updates = _processor.FeedUpdatesOut, deliveries = _edge.Deliveries;
            LogStatus(
                _logger,
                posts,
                (posts - lastPosts) / seconds,
                _processor.FollowsIn,
                updates,
                (updates - lastUpdates) / seconds,
                _processor.DeadLetters,
                _edge.Subscribers,
                deliveries,
                (deliveries - lastDeliveries) / seconds);
            (lastPosts, lastUpdates, lastDeliveries) = (posts, updates, deliveries);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message =
        "status: posts in {Posts} ({PostRate:F0}/s) · follows in {Follows} · feed updates out {Updates} ({UpdateRate:F0}/s) · dead letters {DeadLetters} · subscribers {Subscribers} · delivered {Deliveries} ({DeliveryRate:F0}/s)")]
    private static partial void LogStatus(
        ILogger logger, long posts, double postRate, long follows, long updates, double updateRate, long deadLetters, long subscribers, long deliveries, double deliveryRate);
}
