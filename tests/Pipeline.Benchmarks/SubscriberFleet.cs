using Feed.V1;
using Grpc.Core;
using Grpc.Net.Client;
using HdrHistogram;
using Pipeline.DevStack;

namespace Pipeline.Benchmarks;

/// <summary>
/// Many subscribers on few or many HTTP/2 connections. Each records post → receive latency (µs) into one shared
/// concurrent histogram and checks its author's sequence numbers: a gap or a repeat is counted, never hidden.
/// </summary>
public sealed class SubscriberFleet : IAsyncDisposable
{
    private readonly List<GrpcChannel> _channels = [];
    private readonly List<Subscriber> _subscribers = [];
    private readonly CancellationTokenSource _stop = new();

    private readonly Metadata _authorization = new() { { "Authorization", $"Bearer {ServiceToken()}" } };
    private long _deliveries;
    private long _gaps;
    private long _duplicates;
    private long _lastDeliveryTicks;

    /// <summary>One service-role token for a whole fleet (services may read any user's feed), valid for 6 hours.</summary>
    public static string ServiceToken() => new DevTokens().Mint("bench-harness", service: true, TimeSpan.FromHours(6));

    public LongConcurrentHistogram Latency { get; } = new(1, 120_000_000, 3);

    public long Deliveries => Interlocked.Read(ref _deliveries);

    public long Gaps => Interlocked.Read(ref _gaps);

    public long Duplicates => Interlocked.Read(ref _duplicates);

    public DateTime LastDelivery => new(Interlocked.Read(ref _lastDeliveryTicks), DateTimeKind.Utc);

    public int Count => _subscribers.Count;

    public int Resubscribes => _subscribers.Sum(s => s.Resubscribes);

    public int Live => _subscribers.Count(s => s.IsLive);

    /// <summary>When each live subscriber last went live (<see cref="System.Diagnostics.Stopwatch"/> timestamps), ascending.</summary>
    public long[] LiveSince() => [.. _subscribers.Where(s => s.IsLive).Select(s => s.LiveSince).Order()];

    /// <summary>The most recent stream error any subscriber saw, for diagnosis when subscribers cannot get live.</summary>
    public string? LastError { get; private set; }

    /// <summary>Opens one subscription per user, <paramref name="perConnection"/> streams per HTTP/2 connection, and waits until all are live.</summary>
    /// <param name="opensPerSecond">How fast subscribers arrive; 0 opens them all at once (a burst, as after a restart).</param>
    /// <param name="stallTimeout">How long to wait with no subscriber going live before giving up (default 60 s).</param>
    /// <exception cref="InvalidOperationException">Subscribers stopped going live before all were.</exception>
    public async Task OpenAsync(string address, IReadOnlyList<string> users, int perConnection, CancellationToken cancellationToken, double opensPerSecond = 0, TimeSpan? stallTimeout = null)
    {
        var stall = stallTimeout ?? TimeSpan.FromSeconds(60);
        var opening = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < users.Count; i++)
        {
            if (opensPerSecond > 0 && TimeSpan.FromSeconds(i / opensPerSecond) - opening.Elapsed is { TotalMilliseconds: >= 10 } ahead)
            {
                await Task.Delay(ahead, cancellationToken);
            }

            if (i % perConnection == 0)
            {
                _channels.Add(GrpcChannel.ForAddress(address, new GrpcChannelOptions
                {
                    HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false, KeepAlivePingDelay = TimeSpan.FromSeconds(60) },
                    MaxReceiveMessageSize = 1 << 20,

                    // Reconnect as a client that wants a fast resume would: grpc-dotnet backs a failed connection off
                    // from 1 s up to 2 min by default, so after a few seconds of an edge restart the channels wait
                    // several seconds past the moment the new edge serves.
                    InitialReconnectBackoff = TimeSpan.FromMilliseconds(100),
                    MaxReconnectBackoff = TimeSpan.FromSeconds(1),
                }));
            }

            var subscriber = new Subscriber(this, new FeedService.FeedServiceClient(_channels[^1]), users[i]);
            _subscribers.Add(subscriber);
            subscriber.Start(_stop.Token);
        }

        // Bounded by progress, not by a total time: a paced arrival of many subscribers takes as long as it takes, but
        // an edge that refuses the rest (Edge:MaxSubscriptions, RESOURCE_EXHAUSTED) would have them retry forever.
        // Progress is a new most-live count: a fleet that loses streams as fast as it opens them makes none.
        var waited = 0;
        var (mostLive, progressed) = (0, opening.Elapsed);
        while (_subscribers.Any(s => !s.IsLive))
        {
            await Task.Delay(50, cancellationToken);
            if (++waited % 200 == 0)
            {
                Console.WriteLine($"  waiting: {Live}/{Count} subscribers live; last error: {LastError}");
            }

            if (waited % 20 == 0 && Live is var now && now > mostLive)
            {
                (mostLive, progressed) = (now, opening.Elapsed);
            }
            else if (opening.Elapsed - progressed > stall)
            {
                throw new InvalidOperationException($"{Live} of {Count} subscribers live, and no more for {stall.TotalSeconds:0} s; last error: {LastError}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_subscribers.Select(s => s.Completion));
        _channels.ForEach(c => c.Dispose());
        _stop.Dispose();
    }

    private void Record(long sentTicks, int author, long sequence, Subscriber subscriber)
    {
        var now = DateTime.UtcNow.Ticks;
        Latency.RecordValue(Math.Max(1, (now - sentTicks) / 10));
        Interlocked.Increment(ref _deliveries);
        Interlocked.Exchange(ref _lastDeliveryTicks, now);
        var expected = subscriber.NextSequence(author);
        if (sequence > expected)
        {
            Interlocked.Add(ref _gaps, sequence - expected);
        }
        else if (sequence < expected)
        {
            Interlocked.Increment(ref _duplicates);
            return;
        }

        subscriber.Saw(author, sequence);
    }

    /// <summary>One user's stream; on any stream error it resubscribes with its last cursor, as a real client does.</summary>
    private sealed class Subscriber(SubscriberFleet fleet, FeedService.FeedServiceClient client, string user)
    {
        private readonly Dictionary<int, long> _next = [];
        private string _cursor = "";
        private volatile bool _live;
        private long _liveSince;

        public Task Completion { get; private set; } = Task.CompletedTask;

        public bool IsLive => _live;

        public long LiveSince => Interlocked.Read(ref _liveSince);

        public int Resubscribes { get; private set; }

        public long NextSequence(int author) => _next.GetValueOrDefault(author);

        public void Saw(int author, long sequence) => _next[author] = sequence + 1;

        public void Start(CancellationToken cancellationToken) => Completion = RunAsync(cancellationToken);

        private async Task RunAsync(CancellationToken cancellationToken)
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    // WaitForReady: while the edge is away the call waits for the channel to reconnect. Failing at
                    // once and retrying every 20-100 ms let 10,000 subscribers attempt up to ~150,000 calls a second
                    // on the cores the restarting edge needed.
                    using var call = client.Subscribe(new SubscribeRequest { UserId = user, Cursor = _cursor }, new CallOptions(fleet._authorization, cancellationToken: cancellationToken).WithWaitForReady());
                    await call.ResponseHeadersAsync;
                    Interlocked.Exchange(ref _liveSince, System.Diagnostics.Stopwatch.GetTimestamp());
                    _live = true;
                    while (await call.ResponseStream.MoveNext(cancellationToken))
                    {
                        var feedEvent = call.ResponseStream.Current;
                        _cursor = feedEvent.Cursor;
                        if (feedEvent.EventCase == FeedEvent.EventOneofCase.Added)
                        {
                            var (sent, author, sequence) = FeedWorkload.ParseBody(feedEvent.Added.Post.Body);
                            fleet.Record(sent, author, sequence, this);
                        }
                    }
                }
                catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
                {
                    fleet.LastError = $"{ex.StatusCode}: {ex.Status.Detail}";
                    _live = false;
                    Resubscribes++;
                    await Task.Delay(Random.Shared.Next(20, 100), CancellationToken.None);
                }
                catch (Exception) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
            }
        }
    }
}
