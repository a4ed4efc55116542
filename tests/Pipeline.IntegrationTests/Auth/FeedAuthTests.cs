using System.Globalization;
using Feed.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Pipeline.DevStack;
using Pipeline.IntegrationTests.Pipeline;
using Pipeline.Kafka;

namespace Pipeline.IntegrationTests.Auth;

/// <summary>
/// Who may read and write what, over real loopback gRPC: the caller is the subject of its token, refused calls
/// end before a single feed event, and only the service role reaches other users' data.
/// </summary>
[Collection(PipelineTestGroup.Name)]
public sealed class FeedAuthTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly PipelineFixture _pipeline;

    public FeedAuthTests(PipelineFixture pipeline)
    {
        _pipeline = pipeline;
    }

    public static TheoryData<string, string> BadTokenKinds => BadTokens.Kinds;

    [Theory]
    [MemberData(nameof(BadTokenKinds))]
    public async Task Subscribe_WithBadToken_UnauthenticatedBeforeAnyEvent(string kind, string reason)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var victim = await UserWithStoredFeedAsync("victim", timeout.Token);
        using var channel = GrpcChannel.ForAddress(_pipeline.GrpcAddress, BadTokens.ChannelOptions(BadTokens.Create(kind, victim)));

        using var call = new FeedService.FeedServiceClient(channel).Subscribe(new SubscribeRequest { UserId = victim, SnapshotSize = 10 }, cancellationToken: timeout.Token);

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(timeout.Token));
        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.Contains(reason, error.Status.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(BadTokenKinds))]
    public async Task Ingest_WithBadToken_UnauthenticatedAndNothingWritten(string kind, string reason)
    {
        var victim = User("victim");
        using var channel = GrpcChannel.ForAddress(_pipeline.GrpcAddress, BadTokens.ChannelOptions(BadTokens.Create(kind, victim)));
        var before = _pipeline.RecordCount(FeedTopics.Posts);

        var error = await Assert.ThrowsAsync<RpcException>(() =>
            new IngestService.IngestServiceClient(channel).PublishPostAsync(new PublishPostRequest { AuthorId = victim, Body = "forged" }).ResponseAsync.WaitAsync(Timeout));

        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.Contains(reason, error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(before, _pipeline.RecordCount(FeedTopics.Posts));
    }

    [Fact]
    public async Task Subscribe_ToAnotherUsersFeed_PermissionDeniedWhileTheOwnerReceives()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var (author, victim) = (User("author"), User("victim"));
        await _pipeline.FollowAsync(victim, author, timeout.Token);
        await PublishAsync(author, "stored before the intrusion", timeout.Token);
        using var owner = await _pipeline.SubscribeAsync(victim, timeout.Token);

        using var intrusion = new FeedService.FeedServiceClient(_pipeline.ChannelFor(User("intruder")))
            .Subscribe(new SubscribeRequest { UserId = victim, SnapshotSize = 10 }, cancellationToken: timeout.Token);
        var published = await PublishAsync(author, "live during the intrusion", timeout.Token);

        // The first post may still be in flight when the owner subscribes; the live one must arrive.
        var received = await owner.ResponseStream.NextUpdateAsync(timeout.Token);
        if (received.Added.Post.PostId != published)
        {
            received = await owner.ResponseStream.NextUpdateAsync(timeout.Token);
        }

        Assert.Equal(published, received.Added.Post.PostId);
        var error = await Assert.ThrowsAsync<RpcException>(() => intrusion.ResponseStream.MoveNext(timeout.Token));
        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
        Assert.Contains("may only subscribe to their own feed", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Subscribe_WithEmptyUserId_ReadsTheCallersOwnFeed()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var (author, user) = (User("author"), User("self"));
        await _pipeline.FollowAsync(user, author, timeout.Token);

        using var call = new FeedService.FeedServiceClient(_pipeline.ChannelFor(user)).Subscribe(new SubscribeRequest(), cancellationToken: timeout.Token);
        await call.ResponseHeadersAsync.WaitAsync(timeout.Token);
        var published = await PublishAsync(author, "for whoever holds the token", timeout.Token);

        Assert.Equal(published, (await call.ResponseStream.NextUpdateAsync(timeout.Token)).Added.Post.PostId);
    }

    [Fact]
    public async Task Subscribe_AsService_ReadsAnyUsersFeed()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var (author, user) = (User("author"), User("watched"));
        await _pipeline.FollowAsync(user, author, timeout.Token);

        using var call = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = user }, cancellationToken: timeout.Token);
        await call.ResponseHeadersAsync.WaitAsync(timeout.Token);
        var published = await PublishAsync(author, "seen by the service", timeout.Token);

        Assert.Equal(published, (await call.ResponseStream.NextUpdateAsync(timeout.Token)).Added.Post.PostId);
    }

    public static TheoryData<string, Func<IngestService.IngestServiceClient, string, Task>> ForgedWrites => new()
    {
        { "post as the victim", (c, victim) => c.PublishPostAsync(new PublishPostRequest { AuthorId = victim, Body = "forged" }).ResponseAsync },
        { "delete the victim's post", (c, victim) => c.DeletePostAsync(new DeletePostRequest { AuthorId = victim, PostId = "p-1" }).ResponseAsync },
        { "follow as the victim", (c, victim) => c.FollowAsync(new FollowRequest { FollowerId = victim, FolloweeId = "spammer" }).ResponseAsync },
        { "unfollow as the victim", (c, victim) => c.UnfollowAsync(new FollowRequest { FollowerId = victim, FolloweeId = "friend" }).ResponseAsync },
    };

    [Theory]
    [MemberData(nameof(ForgedWrites))]
    public async Task Ingest_AsAnotherUser_PermissionDeniedAndNothingWritten(string scenario, Func<IngestService.IngestServiceClient, string, Task> write)
    {
        var intruder = new IngestService.IngestServiceClient(_pipeline.ChannelFor(User("intruder")));
        var before = (_pipeline.RecordCount(FeedTopics.Posts), _pipeline.RecordCount(FeedTopics.Follows));

        var error = await Assert.ThrowsAsync<RpcException>(() => write(intruder, User("victim")).WaitAsync(Timeout));

        Assert.True(error.StatusCode == StatusCode.PermissionDenied, $"{scenario}: {error.Status}");
        Assert.Contains("is not the caller", error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(before, (_pipeline.RecordCount(FeedTopics.Posts), _pipeline.RecordCount(FeedTopics.Follows)));
    }

    [Fact]
    public async Task Ingest_AsYourself_IsWritten()
    {
        var user = User("writer");
        var before = _pipeline.RecordCount(FeedTopics.Posts);

        var response = await new IngestService.IngestServiceClient(_pipeline.ChannelFor(user))
            .PublishPostAsync(new PublishPostRequest { AuthorId = user, Body = "my own words" }).ResponseAsync.WaitAsync(Timeout);

        Assert.False(string.IsNullOrEmpty(response.PostId));
        Assert.Equal(before + 1, _pipeline.RecordCount(FeedTopics.Posts));
    }

    [Fact]
    public async Task ValidatedToken_IsNotValidatedAgain_AndAnAlteredCopyIsStillRefused()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_pipeline.WebPort}"), Timeout = Timeout };
        var user = User("cached");
        var token = new DevTokens().Mint(user);
        var hitsBefore = await MetricAsync(http, TokenCacheHits, timeout.Token);
        var validationsBefore = await MetricAsync(http, ValidTokens, timeout.Token);
        using var channel = GrpcChannel.ForAddress(_pipeline.GrpcAddress, BadTokens.ChannelOptions(token));
        var feed = new FeedService.FeedServiceClient(channel);

        for (var call = 0; call < 3; call++)
        {
            using var subscribe = feed.Subscribe(new SubscribeRequest { UserId = user }, cancellationToken: timeout.Token);
            await subscribe.ResponseHeadersAsync.WaitAsync(timeout.Token);
        }

        // The first call validated the token; the next two found it (the exporter may answer from its 300 ms cache).
        var hits = await MetricAsync(http, TokenCacheHits, timeout.Token);
        while (hits < hitsBefore + 2)
        {
            await Task.Delay(100, timeout.Token);
            hits = await MetricAsync(http, TokenCacheHits, timeout.Token);
        }

        // Validated once in all: nothing else in the pipeline (such as a stock authentication middleware in front of
        // the caller gate) validates a call's token again.
        Assert.Equal(validationsBefore + 1, await MetricAsync(http, ValidTokens, timeout.Token));

        // One character of the cached token's signature changed: a different token, validated, and refused.
        var signatureAt = token.LastIndexOf('.') + 1;
        var altered = string.Concat(token.AsSpan(0, signatureAt), token[signatureAt] == 'A' ? "B" : "A", token.AsSpan(signatureAt + 1));
        using var alteredChannel = GrpcChannel.ForAddress(_pipeline.GrpcAddress, BadTokens.ChannelOptions(altered));
        using var forged = new FeedService.FeedServiceClient(alteredChannel).Subscribe(new SubscribeRequest { UserId = user }, cancellationToken: timeout.Token);
        var error = await Assert.ThrowsAsync<RpcException>(() => forged.ResponseStream.MoveNext(timeout.Token));
        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.Contains("signature", error.Status.Detail, StringComparison.Ordinal);
    }

    private static readonly (string Name, string Result) TokenCacheHits = ("feed_edge_token_cache_lookups_total", "hit");

    private static readonly (string Name, string Result) ValidTokens = ("feed_edge_token_validations_total", "valid");

    private static async Task<double> MetricAsync(HttpClient http, (string Name, string Result) series, CancellationToken cancellationToken)
    {
        var text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative), cancellationToken);
        var line = text.Split('\n').FirstOrDefault(line => line.StartsWith(series.Name + "{", StringComparison.Ordinal) && line.Contains($"result=\"{series.Result}\"", StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[(line.LastIndexOf('}') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
    }

    /// <summary>A user who follows an author with one post, so a feed read that got through would have data to send.</summary>
    private async Task<string> UserWithStoredFeedAsync(string role, CancellationToken cancellationToken)
    {
        var (author, user) = (User("author"), User(role));
        await _pipeline.FollowAsync(user, author, cancellationToken);
        var stored = await PublishAsync(author, "private to the follower", cancellationToken);

        // Wait until the post is in the stored feed: from then on a read that got through would get it in its snapshot.
        while (true)
        {
            using var call = _pipeline.Feed.Subscribe(new SubscribeRequest { UserId = user, SnapshotSize = 1 }, cancellationToken: cancellationToken);
            if (await call.ResponseStream.MoveNext(cancellationToken) && call.ResponseStream.Current.Added?.Post.PostId == stored)
            {
                return user;
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    private async Task<string> PublishAsync(string author, string body, CancellationToken cancellationToken) =>
        (await _pipeline.Ingest.PublishPostAsync(new PublishPostRequest { AuthorId = author, Body = body }, cancellationToken: cancellationToken)).PostId;

    private static string User(string role) => $"auth-{role}-{Guid.NewGuid().ToString("N")[..8]}";
}
