using Feed.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Pipeline.DevStack;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.FaultBattery;

/// <summary>
/// Subscribers that behave like real clients: each keeps the last cursor it saw and resubscribes with it after
/// any stream error. Each records exactly what it received, and the position it started from, so the verifier
/// can compare it with feed.updates.
/// </summary>
public sealed class BatterySubscribers : IAsyncDisposable
{
    /// <summary>The edges' cursor key in the harness (PipelineProcesses): lets the battery read a cursor's position.</summary>
    private static readonly CursorCodec Cursors = new(new byte[32]);

    private readonly List<GrpcChannel> _channels = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Metadata _authorization = new() { { "Authorization", $"Bearer {new DevTokens().Mint("fault-battery", service: true, TimeSpan.FromHours(6))}" } };

    public List<Client> Clients { get; } = [];

    public int Live => Clients.Count(c => c.IsLive);

    public int Resumes => Clients.Sum(c => c.Resumes);

    /// <summary>Opens one resuming subscription per user, <paramref name="perConnection"/> per HTTP/2 connection, and waits until all are live.</summary>
    public async Task OpenAsync(string address, IEnumerable<string> users, int perConnection, CancellationToken cancellationToken)
    {
        foreach (var (user, index) in users.Select((u, i) => (u, i)))
        {
            if (index % perConnection == 0)
            {
                _channels.Add(GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false } }));
            }

            var client = new Client(new FeedService.FeedServiceClient(_channels[^1]), user, _authorization);
            Clients.Add(client);
            client.Start(_stop.Token);
        }

        await WaitAsync(() => Clients.All(c => c.IsLive && c.StartedAt is not null), TimeSpan.FromMinutes(2), "subscribers to go live", cancellationToken);
    }

    /// <summary>Waits until every subscriber received <paramref name="postId"/> (the scenario's last marker).</summary>
    public Task WaitForAsync(string postId, CancellationToken cancellationToken) =>
        WaitAsync(() => Clients.All(c => c.HasReceived(postId)), TimeSpan.FromMinutes(3), $"every subscriber to receive {postId}", cancellationToken);

    /// <summary>Each subscriber's received updates against the updates feed.updates holds for its user after its start.</summary>
    public Verdict Verify(IReadOnlyList<ObservedUpdate> log)
    {
        var byUser = log.GroupBy(u => u.User).ToDictionary(g => g.Key, g => g.OrderBy(u => u.Offset).ToList(), StringComparer.Ordinal);
        var verdict = Verdict.Empty;
        foreach (var (client, index) in Clients.Select((c, i) => (c, i)))
        {
            var key = $"{index}";
            var start = client.StartedAt!.Value;
            var expected = byUser.GetValueOrDefault(client.User, [])
                .Where(u => start.Partition < 0 || (u.Partition == start.Partition && u.Offset > start.Offset))
                .Select(u => (u.Kind, u.PostId))
                .ToList();
            verdict += Verifier.Sequences(
                new Dictionary<string, List<(FeedUpdateKind, string)>> { [key] = expected },
                new Dictionary<string, List<(FeedUpdateKind, string)>> { [key] = client.Snapshot() });
            verdict += Verdict.Empty with { Unexpected = client.Resets };
        }

        return verdict;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(Clients.Select(c => c.Completion));
        _channels.ForEach(c => c.Dispose());
        _stop.Dispose();
    }

    public static async Task WaitAsync(Func<bool> condition, TimeSpan timeout, string what, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {timeout} waiting for {what}");
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    public sealed class Client(FeedService.FeedServiceClient client, string user, Metadata authorization)
    {
        private readonly List<(FeedUpdateKind Kind, string PostId)> _received = [];
        private readonly HashSet<string> _addedPosts = [];
        private readonly Lock _gate = new();
        private string _cursor = "";
        private volatile bool _live;

        public string User => user;

        /// <summary>Where the subscription started (the first cursor's position).</summary>
        public FeedCursor? StartedAt { get; private set; }

        public bool IsLive => _live;

        public int Resumes { get; private set; }

        public int Resets { get; private set; }

        public string? LastError { get; private set; }

        public Task Completion { get; private set; } = Task.CompletedTask;

        public bool HasReceived(string postId)
        {
            lock (_gate)
            {
                return _addedPosts.Contains(postId);
            }
        }

        public List<(FeedUpdateKind Kind, string PostId)> Snapshot()
        {
            lock (_gate)
            {
                return [.. _received];
            }
        }

        public void Start(CancellationToken cancellationToken) => Completion = RunAsync(cancellationToken);

        private async Task RunAsync(CancellationToken cancellationToken)
        {
            var failures = 0;
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    using var call = client.Subscribe(new SubscribeRequest { UserId = user, Cursor = _cursor }, authorization, cancellationToken: cancellationToken);
                    await call.ResponseHeadersAsync;
                    _live = true;
                    failures = 0;
                    while (await call.ResponseStream.MoveNext(cancellationToken))
                    {
                        Receive(call.ResponseStream.Current);
                    }

                    _live = false;
                }
                catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
                {
                    _live = false;
                    LastError = $"{ex.StatusCode}: {ex.Status.Detail}";
                    Resumes++;

                    // Exponential backoff with jitter, as a well-behaved client retries an edge that is down.
                    var ceiling = Math.Min(2000, 50 << Math.Min(failures++, 6));
                    await Task.Delay(Random.Shared.Next(ceiling / 2, ceiling), CancellationToken.None);
                }
                catch (Exception) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
            }
        }

        private void Receive(FeedEvent feedEvent)
        {
            if (feedEvent.EventCase == FeedEvent.EventOneofCase.Reset)
            {
                // The battery's cursors never leave the resume window: a reset here is a failure.
                Resets++;
                LastError = $"reset: {feedEvent.Reset.Reason}";
            }

            if (feedEvent.Cursor.Length > 0)
            {
                _cursor = feedEvent.Cursor;
                if (StartedAt is null && Cursors.TryDecode(feedEvent.Cursor, user, out var position) == CursorVerdict.Valid)
                {
                    StartedAt = position;
                }
            }

            lock (_gate)
            {
                switch (feedEvent.EventCase)
                {
                    case FeedEvent.EventOneofCase.Added:
                        _received.Add((FeedUpdateKind.Added, feedEvent.Added.Post.PostId));
                        _addedPosts.Add(feedEvent.Added.Post.PostId);
                        break;
                    case FeedEvent.EventOneofCase.Removed:
                        _received.Add((FeedUpdateKind.Removed, feedEvent.Removed.PostId));
                        break;
                }
            }
        }
    }
}
