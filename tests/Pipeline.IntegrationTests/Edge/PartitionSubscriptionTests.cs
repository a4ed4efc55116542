using Feed.V1;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.IntegrationTests.Pipeline;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.IntegrationTests.Edge;

/// <summary>
/// SubscribePartitions: a service reads every update of a partition range, disconnects, and resumes from its
/// per-partition cursors with nothing missed and nothing repeated.
/// </summary>
[Collection(PipelineTestGroup.Name)]
public sealed class PartitionSubscriptionTests
{
    private const int Partitions = 3;
    private const int Followers = 6;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly PipelineFixture _pipeline;

    public PartitionSubscriptionTests(PipelineFixture pipeline)
    {
        _pipeline = pipeline;
    }

    [Fact]
    public async Task PartitionRanges_ResumedFromTheirCursors_DeliverEveryUpdateOnceInOrder()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var author = $"part-author-{run}";
        var followers = Enumerable.Range(0, Followers).Select(i => $"part-follower-{run}-{i}").ToHashSet();
        using var timeout = new CancellationTokenSource(Timeout);
        foreach (var follower in followers)
        {
            await _pipeline.FollowAsync(follower, author, timeout.Token);
        }

        // Two services split the partitions: [0, 0] and [1, 2]. Together they must see each follower's updates once.
        var ranges = new[] { (First: 0, Last: 0), (First: 1, Last: Partitions - 1) };
        var readers = ranges.Select(r => new PartitionReader(_pipeline.Feed, r.First, r.Last, followers)).ToList();
        foreach (var reader in readers)
        {
            await reader.ConnectAsync(timeout.Token);
        }

        // Each round: posts while connected (live; the stream is dropped wherever the reading stopped), then posts
        // while the services are disconnected, which come back as a replay from their per-partition cursors.
        var published = new List<string>();
        for (var round = 0; round < 4; round++)
        {
            for (var i = 0; i < 5; i++)
            {
                published.Add(await PublishAsync(author, $"live r{round} p{i}", timeout.Token));
            }

            foreach (var reader in readers)
            {
                await reader.ReadUntilHeartbeatAsync(timeout.Token);
            }

            readers.ForEach(r => r.Disconnect());
            var consumed = _pipeline.EdgeMetrics.UpdatesConsumed;
            for (var i = 0; i < 10; i++)
            {
                published.Add(await PublishAsync(author, $"offline r{round} p{i}", timeout.Token));
            }

            while (_pipeline.EdgeMetrics.UpdatesConsumed < consumed + (10 * followers.Count))
            {
                await Task.Delay(20, timeout.Token);
            }

            foreach (var reader in readers)
            {
                await reader.ConnectAsync(timeout.Token);
            }
        }

        while (readers.Sum(r => r.Received.Count) < followers.Count * published.Count)
        {
            foreach (var reader in readers)
            {
                await reader.ReadUntilHeartbeatAsync(timeout.Token);
            }
        }

        var received = readers.SelectMany(r => r.Received).ToList();
        foreach (var follower in followers)
        {
            Assert.Equal(published, received.Where(u => u.User == follower).Select(u => u.PostId));
        }

        foreach (var (reader, range) in readers.Zip(ranges))
        {
            Assert.All(reader.Received, u => Assert.InRange(u.Partition, range.First, range.Last));
        }

        Assert.All(readers, r => Assert.Equal(4, r.Reconnects));
        readers.ForEach(r => r.Dispose());
    }

    [Fact]
    public async Task CursorOlderThanTheTopicRetains_GetsAnExplicitResetThenTheOldestRetainedUpdates()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        // Offset −5 is below every partition's oldest record (0), exactly like a cursor that retention overtook.
        var cursors = _pipeline.Stack.App.Services.GetRequiredService<CursorCodec>();
        var stale = cursors.Encode(FeedCursor.At(0, -5), FeedEvents.PartitionScope);
        using var call = _pipeline.Feed.SubscribePartitions(new SubscribePartitionsRequest { FirstPartition = 0, LastPartition = 0, Cursors = { stale } }, cancellationToken: timeout.Token);

        Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
        var reset = call.ResponseStream.Current;
        Assert.Equal(PartitionFeedEvent.EventOneofCase.Reset, reset.EventCase);
        Assert.Equal(0, reset.Partition);
        Assert.Contains("oldest retained", reset.Reset.Reason, StringComparison.Ordinal);

        Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
        var first = call.ResponseStream.Current;
        Assert.Equal(PartitionFeedEvent.EventOneofCase.Added, first.EventCase);
        Assert.Equal(0, first.Partition);
        Assert.Equal(CursorVerdict.Valid, cursors.TryDecode(first.Cursor, FeedEvents.PartitionScope, out var position));
        Assert.Equal(FeedCursor.At(0, 0), position);
    }

    [Fact]
    public async Task RefusedRequests_GetTheirStatus_AndNoFeedData()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var userClient = new FeedService.FeedServiceClient(_pipeline.ChannelFor($"part-user-{Guid.NewGuid():N}"));
        var userCursor = await FirstCursorAsync(userClient.Subscribe(new SubscribeRequest(), cancellationToken: timeout.Token), timeout.Token);
        var partitionCursor = _pipeline.Stack.App.Services.GetRequiredService<CursorCodec>().Encode(FeedCursor.At(0, 0), FeedEvents.PartitionScope);

        Assert.Equal((StatusCode.PermissionDenied, 0), await EndOf(userClient.SubscribePartitions(new SubscribePartitionsRequest { FirstPartition = 0, LastPartition = 0 }, cancellationToken: timeout.Token), timeout.Token));
        Assert.Equal((StatusCode.Unauthenticated, 0), await EndOf(new FeedService.FeedServiceClient(_pipeline.Channel).SubscribePartitions(new SubscribePartitionsRequest(), cancellationToken: timeout.Token), timeout.Token));
        Assert.Equal((StatusCode.InvalidArgument, 0), await EndOf(_pipeline.Feed.SubscribePartitions(new SubscribePartitionsRequest { FirstPartition = 0, LastPartition = Partitions }, cancellationToken: timeout.Token), timeout.Token));
        Assert.Equal((StatusCode.InvalidArgument, 0), await EndOf(_pipeline.Feed.SubscribePartitions(new SubscribePartitionsRequest { FirstPartition = 2, LastPartition = 1 }, cancellationToken: timeout.Token), timeout.Token));
        Assert.Equal((StatusCode.InvalidArgument, 0), await EndOf(_pipeline.Feed.SubscribePartitions(new SubscribePartitionsRequest { FirstPartition = 1, LastPartition = 2, Cursors = { partitionCursor } }, cancellationToken: timeout.Token), timeout.Token));
        Assert.Equal((StatusCode.InvalidArgument, 0), await EndOf(_pipeline.Feed.SubscribePartitions(new SubscribePartitionsRequest { FirstPartition = 0, LastPartition = 0, Cursors = { partitionCursor, partitionCursor } }, cancellationToken: timeout.Token), timeout.Token));

        // Cursors do not cross kinds: a user's cursor is not a partition cursor, and the other way round.
        Assert.Equal((StatusCode.PermissionDenied, 0), await EndOf(_pipeline.Feed.SubscribePartitions(new SubscribePartitionsRequest { FirstPartition = 0, LastPartition = 2, Cursors = { userCursor } }, cancellationToken: timeout.Token), timeout.Token));
        Assert.Equal((StatusCode.PermissionDenied, 0), await EndOf(userClient.Subscribe(new SubscribeRequest { Cursor = partitionCursor }, cancellationToken: timeout.Token), timeout.Token));
    }

    /// <summary>The cursor of a user's stream opened without one: its SnapshotEnd marks "now".</summary>
    private async Task<string> PublishAsync(string author, string body, CancellationToken cancellationToken) =>
        (await _pipeline.Ingest.PublishPostAsync(new PublishPostRequest { AuthorId = author, Body = body }, cancellationToken: cancellationToken)).PostId;

    private static async Task<string> FirstCursorAsync(AsyncServerStreamingCall<FeedEvent> call, CancellationToken cancellationToken)
    {
        using (call)
        {
            Assert.True(await call.ResponseStream.MoveNext(cancellationToken));
            Assert.Equal(FeedEvent.EventOneofCase.SnapshotEnd, call.ResponseStream.Current.EventCase);
            return call.ResponseStream.Current.Cursor;
        }
    }

    private static Task<(StatusCode Status, int Received)> EndOf<T>(AsyncServerStreamingCall<T> call, CancellationToken cancellationToken) =>
        call.EndAsync(cancellationToken);

    private sealed record Update(string User, string PostId, int Partition);

    /// <summary>A service consumer of a partition range that keeps the newest cursor per partition and resumes from all of them.</summary>
    private sealed class PartitionReader(FeedService.FeedServiceClient client, int first, int last, IReadOnlySet<string> users) : IDisposable
    {
        private readonly Dictionary<int, string> _cursors = [];
        private AsyncServerStreamingCall<PartitionFeedEvent>? _call;

        public List<Update> Received { get; } = [];

        public int Reconnects { get; private set; }

        public async Task ConnectAsync(CancellationToken cancellationToken)
        {
            _call = client.SubscribePartitions(new SubscribePartitionsRequest { FirstPartition = first, LastPartition = last, Cursors = { _cursors.Values } }, cancellationToken: cancellationToken);
            await _call.ResponseHeadersAsync.WaitAsync(cancellationToken);
            while (_cursors.Count < last - first + 1)
            {
                Assert.True(await _call.ResponseStream.MoveNext(cancellationToken));
                Assert.Equal(PartitionFeedEvent.EventOneofCase.Start, _call.ResponseStream.Current.EventCase);
                _cursors[_call.ResponseStream.Current.Partition] = _call.ResponseStream.Current.Cursor;
            }
        }

        public void Disconnect()
        {
            if (_call is not null)
            {
                _call.Dispose();
                _call = null;
                Reconnects++;
            }
        }

        /// <summary>Reads what the stream delivers until the next heartbeat.</summary>
        public async Task ReadUntilHeartbeatAsync(CancellationToken cancellationToken)
        {
            while (await _call!.ResponseStream.MoveNext(cancellationToken))
            {
                var feedEvent = _call.ResponseStream.Current;
                Assert.NotEqual(PartitionFeedEvent.EventOneofCase.Reset, feedEvent.EventCase);
                if (feedEvent.EventCase == PartitionFeedEvent.EventOneofCase.Heartbeat)
                {
                    return;
                }

                _cursors[feedEvent.Partition] = feedEvent.Cursor;
                if (feedEvent.EventCase == PartitionFeedEvent.EventOneofCase.Added && users.Contains(feedEvent.UserId))
                {
                    Received.Add(new Update(feedEvent.UserId, feedEvent.Added.Post.PostId, feedEvent.Partition));
                }
            }

            throw new InvalidOperationException("the partition stream ended");
        }

        public void Dispose() => _call?.Dispose();
    }
}
