using Feed.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.DevStack;

/// <summary>
/// Demo load through the public APIs, as a real client would drive them: users follow each other through the
/// ingest service, a few of them subscribe to their feeds, and random users post at the configured rate.
/// </summary>
public sealed partial class DemoTraffic : BackgroundService
{
    private const int DemoSubscribers = 3;
    private const string DemoCaller = "demo-traffic";

    private readonly DevStackSettings _settings;
    private readonly EdgeReadiness _readiness;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<DemoTraffic> _logger;

    public DemoTraffic(DevStackSettings settings, EdgeReadiness readiness, IHostApplicationLifetime lifetime, ILogger<DemoTraffic> logger)
    {
        _settings = settings;
        _readiness = readiness;
        _lifetime = lifetime;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The web server stops before this service's own token fires, so the demo also stops at ApplicationStopping:
        // calls still in flight then fail as expected rather than as a crash of the host.
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, _lifetime.ApplicationStopping);
        try
        {
            await RunAsync(stopping.Token);
        }
        catch (Exception ex) when (stopping.IsCancellationRequested && ex is OperationCanceledException or RpcException)
        {
            // Ctrl-C: in-flight demo calls are cancelled; nothing to report.
        }
    }

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        while (!_readiness.IsReady)
        {
            await Task.Delay(100, stoppingToken);
        }

        // The demo acts for many users at once, as an ingest bridge would: one service-role token covers them all.
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{_settings.GrpcPort}", new DevTokens().ChannelOptions(DemoCaller, service: true));
        var ingest = new IngestService.IngestServiceClient(channel);
        var users = Enumerable.Range(0, _settings.DemoUsers).Select(i => $"user-{i:D4}").ToArray();
        var random = new Random(42);

        var follows = new List<Task>();
        foreach (var follower in users)
        {
            foreach (var followee in random.GetItems(users, _settings.DemoFollowsPerUser).Distinct().Where(f => f != follower))
            {
                follows.Add(ingest.FollowAsync(new FollowRequest { FollowerId = follower, FolloweeId = followee }, cancellationToken: stoppingToken).ResponseAsync);
            }
        }

        await Task.WhenAll(follows);
        LogFollowsDone(_logger, follows.Count, users.Length);

        var feed = new FeedService.FeedServiceClient(channel);
        var watchers = users.Take(DemoSubscribers).Select(user => WatchAsync(feed, user, stoppingToken)).ToList();

        var interval = TimeSpan.FromSeconds(1 / _settings.DemoPostsPerSecond);
        using var timer = new PeriodicTimer(interval);
        long sequence = 0;
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var author = users[random.Next(users.Length)];
            await ingest.PublishPostAsync(new PublishPostRequest { AuthorId = author, Body = $"demo post #{++sequence} by {author}" }, cancellationToken: stoppingToken);
        }

        await Task.WhenAll(watchers);
    }

    private async Task WatchAsync(FeedService.FeedServiceClient feed, string user, CancellationToken stoppingToken)
    {
        using var call = feed.Subscribe(new SubscribeRequest { UserId = user }, cancellationToken: stoppingToken);
        long received = 0;
        try
        {
            await foreach (var feedEvent in call.ResponseStream.ReadAllAsync(stoppingToken))
            {
                if (feedEvent.Added is { } added && ++received % 20 == 1)
                {
                    LogSample(_logger, user, added.Post.AuthorId, added.Post.Body, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - added.SourceOccurredAtMs);
                }
            }
        }
        catch (RpcException) when (stoppingToken.IsCancellationRequested)
        {
            // The stack is stopping: the edge ends streams with UNAVAILABLE, or the call was cancelled.
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "demo: {Follows} follows among {Users} users sent through the ingest API; posting now")]
    private static partial void LogFollowsDone(ILogger logger, int follows, int users);

    [LoggerMessage(Level = LogLevel.Information, Message = "demo: {User} received \"{Body}\" from {Author} ({LatencyMs} ms after it was published)")]
    private static partial void LogSample(ILogger logger, string user, string author, string body, long latencyMs);
}
