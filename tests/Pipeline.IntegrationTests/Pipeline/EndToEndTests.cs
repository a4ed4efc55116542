using Feed.V1;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using Pipeline.Kafka;

namespace Pipeline.IntegrationTests.Pipeline;

[Collection(PipelineTestGroup.Name)]
public sealed class EndToEndTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly PipelineFixture _pipeline;

    public EndToEndTests(PipelineFixture pipeline)
    {
        _pipeline = pipeline;
    }

    [Fact]
    public async Task PublishedPost_ReachesSubscribedFollower()
    {
        var (author, follower, bystander) = Users("e2e");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(follower, author, timeout.Token);
        await _pipeline.FollowAsync(bystander, follower, timeout.Token);
        using var subscription = await _pipeline.SubscribeAsync(follower, timeout.Token);
        using var bystanderSubscription = await _pipeline.SubscribeAsync(bystander, timeout.Token);

        var published = await _pipeline.Ingest.PublishPostAsync(new PublishPostRequest { AuthorId = author, Body = "hello, followers" }, cancellationToken: timeout.Token);

        var received = await subscription.ResponseStream.NextUpdateAsync(timeout.Token);
        Assert.Equal(FeedEvent.EventOneofCase.Added, received.EventCase);
        Assert.Equal(published.PostId, received.Added.Post.PostId);
        Assert.Equal(author, received.Added.Post.AuthorId);
        Assert.Equal("hello, followers", received.Added.Post.Body);
        Assert.Equal(FeedCause.Live, received.Added.Cause);
        Assert.False(string.IsNullOrEmpty(received.Cursor));

        // The bystander follows the follower, not the author: a second post by the follower is the first thing it sees.
        await _pipeline.Ingest.PublishPostAsync(new PublishPostRequest { AuthorId = follower, Body = "relay" }, cancellationToken: timeout.Token);
        Assert.Equal(follower, (await bystanderSubscription.ResponseStream.NextUpdateAsync(timeout.Token)).Added.Post.AuthorId);
    }

    [Fact]
    public async Task HundredPosts_ArriveInPublishOrder()
    {
        var (author, follower, _) = Users("order");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(follower, author, timeout.Token);
        using var subscription = await _pipeline.SubscribeAsync(follower, timeout.Token);

        var published = new List<string>();
        for (var i = 0; i < 100; i++)
        {
            var response = await _pipeline.Ingest.PublishPostAsync(new PublishPostRequest { AuthorId = author, Body = $"post {i}" }, cancellationToken: timeout.Token);
            published.Add(response.PostId);
        }

        var received = new List<string>();
        var cursors = new HashSet<string>();
        while (received.Count < published.Count)
        {
            var update = await subscription.ResponseStream.NextUpdateAsync(timeout.Token);
            received.Add(update.Added.Post.PostId);
            cursors.Add(update.Cursor);
        }

        Assert.Equal(published, received);
        Assert.Equal(100, cursors.Count);
    }

    public static TheoryData<string, Func<IngestService.IngestServiceClient, Task>, string> InvalidRequests => new()
    {
        { "empty author", c => c.PublishPostAsync(new PublishPostRequest { AuthorId = "", Body = "x" }).ResponseAsync, "author_id is required" },
        { "empty body", c => c.PublishPostAsync(new PublishPostRequest { AuthorId = "a", Body = "" }).ResponseAsync, "body is required" },
        { "body over limit", c => c.PublishPostAsync(new PublishPostRequest { AuthorId = "a", Body = new string('x', 4097) }).ResponseAsync, "body is 4097 bytes (UTF-8); the limit is 4096" },
        { "bad post id", c => c.PublishPostAsync(new PublishPostRequest { AuthorId = "a", Body = "x", PostId = "p 1" }).ResponseAsync, "post_id contains ' '" },
        { "self-follow", c => c.FollowAsync(new FollowRequest { FollowerId = "a", FolloweeId = "a" }).ResponseAsync, "a user cannot follow themselves" },
        { "empty followee", c => c.FollowAsync(new FollowRequest { FollowerId = "a", FolloweeId = "" }).ResponseAsync, "followee_id is required" },
        { "unfollow bad id", c => c.UnfollowAsync(new FollowRequest { FollowerId = "a|b", FolloweeId = "c" }).ResponseAsync, "follower_id contains '|'" },
        { "delete without post", c => c.DeletePostAsync(new DeletePostRequest { AuthorId = "a", PostId = "" }).ResponseAsync, "post_id is required" },
    };

    [Theory]
    [MemberData(nameof(InvalidRequests))]
    public async Task InvalidIngestRequest_InvalidArgumentAndNothingWritten(string scenario, Func<IngestService.IngestServiceClient, Task> call, string message)
    {
        var before = (_pipeline.RecordCount(FeedTopics.Posts), _pipeline.RecordCount(FeedTopics.Follows));

        var error = await Assert.ThrowsAsync<RpcException>(() => call(_pipeline.Ingest).WaitAsync(Timeout));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.True(error.Status.Detail.StartsWith(message, StringComparison.Ordinal), $"{scenario}: '{error.Status.Detail}' should start with '{message}'");
        Assert.Equal(before, (_pipeline.RecordCount(FeedTopics.Posts), _pipeline.RecordCount(FeedTopics.Follows)));
    }

    [Fact]
    public async Task Health_ReportsServingOnceReady()
    {
        var health = new Health.HealthClient(_pipeline.Channel);
        var response = await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.Add(Timeout));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
    }

    [Fact]
    public async Task Reflection_ListsTheFeedServices()
    {
        var reflection = new ServerReflection.ServerReflectionClient(_pipeline.Channel);
        using var timeout = new CancellationTokenSource(Timeout);
        using var call = reflection.ServerReflectionInfo(cancellationToken: timeout.Token);
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" }, timeout.Token);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(timeout.Token));

        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("feed.v1.FeedService", services);
        Assert.Contains("feed.v1.IngestService", services);
        Assert.Contains("grpc.health.v1.Health", services);
    }

    [Fact]
    public async Task GrpcWeb_OverHttp1_SubscribesAndReceives()
    {
        var (author, follower, _) = Users("web");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(follower, author, timeout.Token);
        using var webChannel = _pipeline.WebChannel(_pipeline.Tokens.ChannelOptions(follower));
        using var subscription = new FeedService.FeedServiceClient(webChannel).Subscribe(new SubscribeRequest { UserId = follower }, cancellationToken: timeout.Token);

        // The subscription is registered once the response headers arrive; publish only then.
        await subscription.ResponseHeadersAsync.WaitAsync(timeout.Token);
        var published = await _pipeline.Ingest.PublishPostAsync(new PublishPostRequest { AuthorId = author, Body = "to the browser" }, cancellationToken: timeout.Token);

        Assert.Equal(published.PostId, (await subscription.ResponseStream.NextUpdateAsync(timeout.Token)).Added.Post.PostId);
    }

    private static (string Author, string Follower, string Bystander) Users(string scenario)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        return ($"{scenario}-author-{run}", $"{scenario}-follower-{run}", $"{scenario}-bystander-{run}");
    }
}
