using System.Runtime.CompilerServices;
using Feed.V1;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.IntegrationTests.Pipeline;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.IntegrationTests.Edge;

[Collection(PipelineTestGroup.Name)]
public sealed class SubscriptionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly PipelineFixture _pipeline;

    public SubscriptionTests(PipelineFixture pipeline)
    {
        _pipeline = pipeline;
    }

    [Fact]
    public async Task SnapshotThenLive_WhileUpdatesArrive_NoGapNoDuplicate()
    {
        var (author, follower) = Users("snap");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(follower, author, timeout.Token);
        var published = new List<string>();
        for (var i = 0; i < 15; i++)
        {
            published.Add(await PublishAsync(author, $"early {i}", timeout.Token));
        }

        await DrainAsync(follower, 15, timeout.Token);

        // More posts race with the snapshot read: each must come exactly once, from the snapshot or live.
        var publishing = Task.Run(async () =>
        {
            for (var i = 0; i < 30; i++)
            {
                published.Add(await PublishAsync(author, $"racing {i}", timeout.Token));
            }
        });
        using var call = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = follower, SnapshotSize = 10 }, cancellationToken: timeout.Token);
        var snapshot = new List<string>();
        while (await call.ResponseStream.MoveNext(timeout.Token) && call.ResponseStream.Current.EventCase != FeedEvent.EventOneofCase.SnapshotEnd)
        {
            Assert.True(call.ResponseStream.Current.Added.FromSnapshot);
            snapshot.Add(call.ResponseStream.Current.Added.Post.PostId);
        }

        await publishing;
        var received = new List<string>(snapshot);
        while (received.Count == 0 || received[^1] != published[^1])
        {
            received.Add((await call.ResponseStream.NextUpdateAsync(timeout.Token)).Added.Post.PostId);
        }

        Assert.Equal(10, snapshot.Count);
        Assert.Equal(published.Skip(published.IndexOf(received[0])), received);
    }

    [Fact]
    public async Task Resume_AfterManyDisconnectsWhilePostsFlow_ReceivesExactlyTheFeed()
    {
        var (author, follower) = Users("resume");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(follower, author, timeout.Token);

        var cursor = await CurrentCursorAsync(follower, timeout.Token);
        var published = new List<string>();
        var publishing = Task.Run(async () =>
        {
            for (var i = 0; i < 150; i++)
            {
                published.Add(await PublishAsync(author, $"post {i}", timeout.Token));
            }
        });

        var received = new List<string>();
        var random = new Random(7);
        var disconnects = 0;
        while (!publishing.IsCompleted || received.Count < published.Count)
        {
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
            using var call = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = follower, Cursor = cursor }, cancellationToken: cancel.Token);
            var take = random.Next(1, 8);
            for (var read = 0; read < take && (!publishing.IsCompleted || received.Count < published.Count); read++)
            {
                var update = await call.ResponseStream.NextUpdateAsync(timeout.Token);
                Assert.Equal(FeedEvent.EventOneofCase.Added, update.EventCase);
                received.Add(update.Added.Post.PostId);
                cursor = update.Cursor;
            }

            await cancel.CancelAsync();
            disconnects++;
        }

        await publishing;
        Assert.Equal(published, received);
        Assert.True(disconnects >= 20, $"only {disconnects} disconnects");
    }

    [Fact]
    public async Task Resume_AfterHundredsOfClientAndServerSideDisconnects_EverySubscriberGetsExactlyItsFeed()
    {
        var (author, follower) = Users("storm");
        var followers = Enumerable.Range(0, 8).Select(i => $"{follower}-{i}").ToList();
        using var timeout = new CancellationTokenSource(Timeout);
        foreach (var user in followers)
        {
            await _pipeline.FollowAsync(user, author, timeout.Token);
        }

        var cursors = new System.Collections.Concurrent.ConcurrentDictionary<string, string>();
        foreach (var user in followers)
        {
            cursors[user] = await CurrentCursorAsync(user, timeout.Token);
        }

        // Posts flow while the edge ends every stream from the server side every 30 ms and each client cancels after
        // every update it reads; each subscriber resumes from the last cursor it saw. Fewer posts than the resume
        // window, so no cursor can fall out of it (that path, a reset, is tested on its own).
        var registry = _pipeline.Stack.App.Services.GetRequiredService<SubscriberRegistry>();
        var published = new List<string>();
        var publishing = Task.Run(async () =>
        {
            for (var i = 0; i < PipelineFixture.ResumeWindow - 5; i++)
            {
                published.Add(await PublishAsync(author, $"post {i}", timeout.Token));
            }
        });
        using var stopKilling = new CancellationTokenSource();
        var killing = Task.Run(async () =>
        {
            while (!stopKilling.IsCancellationRequested)
            {
                registry.CompleteAll();
                await Task.Delay(30, CancellationToken.None);
            }
        });

        var disconnects = 0;
        var readers = followers.Select(user => Task.Run(async () =>
        {
            var received = new List<string>();
            var client = new FeedService.FeedServiceClient(_pipeline.ChannelFor(user));
            while (!publishing.IsCompleted || received.Count < published.Count)
            {
                using var cancel = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
                try
                {
                    using var call = client.Subscribe(new SubscribeRequest { UserId = user, Cursor = cursors[user] }, cancellationToken: cancel.Token);
                    for (var read = 0; read < 1 && await call.ResponseStream.MoveNext(cancel.Token);)
                    {
                        var feedEvent = call.ResponseStream.Current;
                        Assert.NotEqual(FeedEvent.EventOneofCase.Reset, feedEvent.EventCase);
                        cursors[user] = feedEvent.Cursor;
                        if (feedEvent.EventCase == FeedEvent.EventOneofCase.Added)
                        {
                            received.Add(feedEvent.Added.Post.PostId);
                            read++;
                        }
                    }

                    await cancel.CancelAsync();
                }
                catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.Cancelled or StatusCode.Aborted)
                {
                    // Server-side kill (UNAVAILABLE), our own cancel, or cut off for falling behind during a long
                    // replay (ABORTED): all three are resumed the same way, from the last cursor.
                }

                Interlocked.Increment(ref disconnects);
            }

            return received;
        })).ToList();

        List<string>[] results;
        try
        {
            results = await Task.WhenAll(readers).WaitAsync(timeout.Token);
        }
        finally
        {
            // Never leave the killer running: the other tests of the collection share this edge.
            await stopKilling.CancelAsync();
            await killing;
        }

        await publishing;

        Assert.All(results, received => Assert.Equal(published, received));
        Assert.True(disconnects >= 200, $"only {disconnects} disconnects");
    }

    [Fact]
    public async Task Resume_ReplaysRemovalsToo()
    {
        var (author, follower) = Users("removal");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(follower, author, timeout.Token);
        var first = await PublishAsync(author, "to be deleted", timeout.Token);
        var cursor = (await DrainAsync(follower, 1, timeout.Token))[^1].Cursor;

        await _pipeline.Ingest.DeletePostAsync(new DeletePostRequest { AuthorId = author, PostId = first }, cancellationToken: timeout.Token);
        var second = await PublishAsync(author, "kept", timeout.Token);

        using var call = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = follower, Cursor = cursor }, cancellationToken: timeout.Token);
        var removed = await call.ResponseStream.NextUpdateAsync(timeout.Token);
        var added = await call.ResponseStream.NextUpdateAsync(timeout.Token);
        Assert.Equal((FeedEvent.EventOneofCase.Removed, first, FeedCause.PostDeleted), (removed.EventCase, removed.Removed.PostId, removed.Removed.Cause));
        Assert.Equal(second, added.Added.Post.PostId);
    }

    [Fact]
    public async Task CursorOlderThanTheResumeWindow_GetsResetThenFreshSnapshot()
    {
        var (author, follower) = Users("stale");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(follower, author, timeout.Token);
        var stale = await CurrentCursorAsync(follower, timeout.Token);
        var published = new List<string>();

        // The edge keeps at least the window and trims the log a chunk at a time: this many updates pass a trim.
        for (var i = 0; i < PipelineFixture.ResumeWindow + FeedReplica.LogTrimChunk(PipelineFixture.ResumeWindow) + 5; i++)
        {
            published.Add(await PublishAsync(author, $"post {i}", timeout.Token));
        }

        await DrainAsync(follower, published.Count, timeout.Token, published[^1]);

        using var call = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = follower, Cursor = stale, SnapshotSize = 10 }, cancellationToken: timeout.Token);
        Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
        Assert.Equal(FeedEvent.EventOneofCase.Reset, call.ResponseStream.Current.EventCase);
        Assert.Contains("older than", call.ResponseStream.Current.Reset.Reason, StringComparison.Ordinal);
        var snapshot = new List<string>();
        while (await call.ResponseStream.MoveNext(timeout.Token) && call.ResponseStream.Current.EventCase == FeedEvent.EventOneofCase.Added)
        {
            snapshot.Add(call.ResponseStream.Current.Added.Post.PostId);
        }

        Assert.Equal(FeedEvent.EventOneofCase.SnapshotEnd, call.ResponseStream.Current.EventCase);
        Assert.Equal(published.TakeLast(10), snapshot);
    }

    [Fact]
    public async Task OtherUsersCursor_IsPermissionDenied_AndGarbageIsInvalidArgument()
    {
        var (_, follower) = Users("cursor");
        using var timeout = new CancellationTokenSource(Timeout);
        var someoneElses = await CurrentCursorAsync($"{follower}-other", timeout.Token);

        var denied = await ReadErrorAsync(new SubscribeRequest { UserId = follower, Cursor = someoneElses }, timeout.Token);
        var garbage = await ReadErrorAsync(new SubscribeRequest { UserId = follower, Cursor = "bm90LWEtY3Vyc29y" }, timeout.Token);

        Assert.Equal((StatusCode.PermissionDenied, 0), denied);
        Assert.Equal((StatusCode.InvalidArgument, 0), garbage);
    }

    [Fact]
    public async Task IdleStream_ReceivesHeartbeatsWithServerTimeAndItsCursor()
    {
        var (_, follower) = Users("idle");
        using var timeout = new CancellationTokenSource(Timeout);
        using var call = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = follower }, cancellationToken: timeout.Token);
        Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
        var position = call.ResponseStream.Current.Cursor;

        for (var beats = 0; beats < 2; beats++)
        {
            Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
            var heartbeat = call.ResponseStream.Current;
            Assert.Equal(FeedEvent.EventOneofCase.Heartbeat, heartbeat.EventCase);
            Assert.Equal(position, heartbeat.Cursor);
            Assert.InRange(heartbeat.Heartbeat.ServerTime.ToDateTimeOffset(), DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(1));
            Assert.Equal(0, heartbeat.Heartbeat.Lag);
        }
    }

    [Fact]
    public async Task HeartbeatAfterAnUpdate_CarriesThatUpdatesCursor_WhichResumesAfterIt()
    {
        var (author, follower) = Users("beat-after-update");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(follower, author, timeout.Token);
        string updateCursor;
        using (var call = await _pipeline.SubscribeAsync(follower, timeout.Token))
        {
            await PublishAsync(author, "before the beat", timeout.Token);
            updateCursor = (await call.ResponseStream.NextUpdateAsync(timeout.Token)).Cursor;

            Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
            Assert.Equal(FeedEvent.EventOneofCase.Heartbeat, call.ResponseStream.Current.EventCase);
            Assert.Equal(updateCursor, call.ResponseStream.Current.Cursor);
        }

        // The heartbeat's cursor is a position like the update's: resuming from it replays nothing before it.
        var after = await PublishAsync(author, "after the beat", timeout.Token);
        using var resumed = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = follower, Cursor = updateCursor }, cancellationToken: timeout.Token);
        Assert.Equal(after, (await resumed.ResponseStream.NextUpdateAsync(timeout.Token)).Added.Post.PostId);
    }

    [Fact]
    public async Task SeveralDevices_EachReceiveEveryUpdate_AndTheCapRefusesMore()
    {
        var (author, follower) = Users("devices");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(follower, author, timeout.Token);
        var devices = new List<AsyncServerStreamingCall<FeedEvent>>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                devices.Add(await _pipeline.SubscribeAsync(follower, timeout.Token));
            }

            var refused = await ReadErrorAsync(new SubscribeRequest { UserId = follower }, timeout.Token);
            var postId = await PublishAsync(author, "to every device", timeout.Token);

            foreach (var device in devices)
            {
                Assert.Equal(postId, (await device.ResponseStream.NextUpdateAsync(timeout.Token)).Added.Post.PostId);
            }

            Assert.Equal((StatusCode.ResourceExhausted, 0), refused);
        }
        finally
        {
            devices.ForEach(d => d.Dispose());
        }
    }

    [Fact]
    public async Task SlowReader_IsCutOff_OthersReceiveEverything_AndNothingLeaks()
    {
        var (author, slowUser) = Users("slow");
        var fastUser = $"{slowUser}-fast";
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(slowUser, author, timeout.Token);
        await _pipeline.FollowAsync(fastUser, author, timeout.Token);
        var baseline = _pipeline.EdgeMetrics.Subscribers;

        using var slow = await _pipeline.SubscribeAsync(slowUser, timeout.Token);
        using var fast = await _pipeline.SubscribeAsync(fastUser, timeout.Token);
        var registry = _pipeline.Stack.App.Services.GetRequiredService<SubscriberRegistry>();
        var slowSubscription = WeakReferenceTo(registry.SubscriptionsOf(slowUser).Single());
        long peakQueued = 0;
        var body = new string('x', 4000);
        var published = new List<string>();
        var fastReceived = new List<string>();
        const int posts = 150;
        // The other reader is an ordinary client: if the shared machine stalls it past its buffer too, it is cut off
        // like anyone else and resumes from its cursor; either way it must end with every post, in order.
        var fastCall = fast;
        var fastReading = Task.Run(async () =>
        {
            var cursor = "";
            while (fastReceived.Count < posts)
            {
                try
                {
                    var update = await fastCall.ResponseStream.NextUpdateAsync(timeout.Token);
                    fastReceived.Add(update.Added.Post.PostId);
                    cursor = update.Cursor;
                }
                catch (RpcException ex) when (ex.StatusCode is StatusCode.Aborted or StatusCode.Cancelled)
                {
                    fastCall.Dispose();
                    fastCall = new FeedService.FeedServiceClient(_pipeline.ChannelFor(fastUser)).Subscribe(new SubscribeRequest { UserId = fastUser, Cursor = cursor }, cancellationToken: timeout.Token);
                }
            }
        });
        // 150 posts of 4 KB: far more than the slow reader's HTTP/2 window and buffer, and fewer than the resume
        // window, so the other reader can always resume exactly if it is cut off too.
        for (var i = 0; i < posts; i++)
        {
            published.Add(await PublishAsync(author, body, timeout.Token));
            peakQueued = Math.Max(peakQueued, registry.QueuedEvents());
        }

        await fastReading.WaitAsync(timeout.Token);
        Assert.Equal(published, fastReceived);

        // The slow reader (which never read) was cut off: its stream ends in an error after what was in flight.
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await slow.ResponseStream.MoveNext(timeout.Token))
            {
            }
        });
        Assert.NotEqual(StatusCode.OK, error.StatusCode);
        fastCall.Dispose();
        await WaitUntilAsync(() => _pipeline.EdgeMetrics.Subscribers == baseline, timeout.Token);

        // Memory: at most one buffer's worth was ever queued per subscriber, nothing is queued now, and nothing
        // still references the cut-off subscription (its queue and the events in it are garbage).
        Assert.InRange(peakQueued, 0, 2 * PipelineFixture.SubscriberBufferSize);
        Assert.Equal(0, registry.QueuedEvents());
        await WaitUntilAsync(
            () =>
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                return !slowSubscription.IsAlive;
            },
            timeout.Token);
    }

    [Fact]
    public async Task ReaderCutOffForFallingBehind_ThatReadsOn_GetsAbortedWithTheReason()
    {
        var (author, user) = Users("lagging");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(user, author, timeout.Token);
        using var call = await _pipeline.SubscribeAsync(user, timeout.Token);
        var subscription = _pipeline.Stack.App.Services.GetRequiredService<SubscriberRegistry>().SubscriptionsOf(user).Single();

        // The client reads nothing: its HTTP/2 window fills, the edge's write to it stalls, then its queue overflows.
        var body = new string('x', 4000);
        for (var i = 0; i < 400 && !subscription.Overflowed; i++)
        {
            await PublishAsync(author, body, timeout.Token);
        }

        await WaitUntilAsync(() => subscription.Overflowed, timeout.Token);

        // It reads on within Edge:SlowSubscriberGrace: the stalled write completes, and the stream ends with the
        // status that says what happened (not a reset that reads as CANCELLED).
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(timeout.Token))
            {
            }
        });
        Assert.Equal(StatusCode.Aborted, error.StatusCode);
        Assert.Contains($"fell more than {PipelineFixture.SubscriberBufferSize} events behind", error.Status.Detail, StringComparison.Ordinal);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference WeakReferenceTo(object target) => new(target);

    [Fact]
    public async Task ThousandConnectCancelCycles_LeaveNoSubscriptionBehind()
    {
        var (_, user) = Users("churn");
        using var timeout = new CancellationTokenSource(Timeout);
        var baseline = _pipeline.EdgeMetrics.Subscribers;

        for (var i = 0; i < 1000; i++)
        {
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
            using var call = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = user }, cancellationToken: cancel.Token);
            await call.ResponseHeadersAsync.WaitAsync(timeout.Token);
            await cancel.CancelAsync();
        }

        await WaitUntilAsync(() => _pipeline.EdgeMetrics.Subscribers == baseline, timeout.Token);
        Assert.Equal(baseline, _pipeline.EdgeMetrics.Subscribers);
    }

    private async Task<string> PublishAsync(string author, string body, CancellationToken cancellationToken) =>
        (await _pipeline.Ingest.PublishPostAsync(new PublishPostRequest { AuthorId = author, Body = body }, cancellationToken: cancellationToken)).PostId;

    /// <summary>The cursor of "now" for a user: what SnapshotEnd carries on a subscription without a snapshot.</summary>
    private async Task<string> CurrentCursorAsync(string user, CancellationToken cancellationToken)
    {
        using var call = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = user }, cancellationToken: cancellationToken);
        Assert.True(await call.ResponseStream.MoveNext(cancellationToken));
        Assert.Equal(FeedEvent.EventOneofCase.SnapshotEnd, call.ResponseStream.Current.EventCase);
        return call.ResponseStream.Current.Cursor;
    }

    /// <summary>
    /// Waits until the edge holds the user's newest <paramref name="count"/> updates (at most a snapshot's worth,
    /// Edge:MaxSnapshotSize), ending with <paramref name="newestPostId"/> when given, by reading them from a snapshot.
    /// </summary>
    private async Task<List<FeedEvent>> DrainAsync(string user, int count, CancellationToken cancellationToken, string? newestPostId = null)
    {
        count = Math.Min(count, 100);
        while (true)
        {
            using var call = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = user, SnapshotSize = count }, cancellationToken: cancellationToken);
            var events = new List<FeedEvent>();
            while (await call.ResponseStream.MoveNext(cancellationToken) && call.ResponseStream.Current.EventCase != FeedEvent.EventOneofCase.SnapshotEnd)
            {
                events.Add(call.ResponseStream.Current);
            }

            if (events.Count >= count && (newestPostId is null || events[^1].Added.Post.PostId == newestPostId))
            {
                events.Add(call.ResponseStream.Current);
                return events;
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    private Task<(StatusCode Status, int Received)> ReadErrorAsync(SubscribeRequest request, CancellationToken cancellationToken) =>
        _pipeline.Feed.Subscribe(request, cancellationToken: cancellationToken).EndAsync(cancellationToken);

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        while (!condition())
        {
            await Task.Delay(20, cancellationToken);
        }
    }

    private static (string Author, string Follower) Users(string scenario)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        return ($"{scenario}-author-{run}", $"{scenario}-follower-{run}");
    }
}
