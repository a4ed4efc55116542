using Grpc.Core;
using Microsoft.Extensions.Options;
using Pipeline.StreamEdge.Auth;

namespace Pipeline.UnitTests.StreamEdge.Auth;

public sealed class FeedAccessPolicyTests
{
    private readonly FeedAccessPolicy _policy = new(Options.Create(new AuthOptions()));

    [Fact]
    public void OwnFeed_IsTheCallersSubject() =>
        Assert.Equal("alice", _policy.ResolveFeedOwner(CallerContext.With(("sub", "alice")), "alice"));

    [Fact]
    public void EmptyUserId_MeansTheCallersOwnFeed() =>
        Assert.Equal("alice", _policy.ResolveFeedOwner(CallerContext.With(("sub", "alice")), ""));

    [Fact]
    public void OtherUsersFeed_PermissionDenied()
    {
        var error = Assert.Throws<RpcException>(() => _policy.ResolveFeedOwner(CallerContext.With(("sub", "alice")), "bob"));

        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
        Assert.Contains("may only subscribe to their own feed", error.Status.Detail, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> ServiceGrants => new()
    {
        { "role", "feed.service" },
        { "roles", "feed.service" },
        { "scope", "feed.service" },
        { "scope", "openid feed.read feed.service" },
    };

    [Theory]
    [MemberData(nameof(ServiceGrants))]
    public void ServiceRole_MayReadAnyFeed(string claim, string value)
    {
        var service = CallerContext.With(("sub", "ingest-bridge"), (claim, value));

        Assert.Equal("bob", _policy.ResolveFeedOwner(service, "bob"));
        Assert.True(_policy.IsService(service));
    }

    public static TheoryData<string, string> NotServiceGrants => new()
    {
        { "role", "feed.reader" },
        { "role", "feed.service feed.reader" },
        { "scope", "feed.services" },
        { "scope", "openid feed.service.read" },
        { "scp", "feed.service" },
    };

    [Theory]
    [MemberData(nameof(NotServiceGrants))]
    public void AnythingButTheExactServiceRole_GrantsNothing(string claim, string value)
    {
        var caller = CallerContext.With(("sub", "alice"), (claim, value));

        Assert.Equal(StatusCode.PermissionDenied, Assert.Throws<RpcException>(() => _policy.ResolveFeedOwner(caller, "bob")).StatusCode);
        Assert.False(_policy.IsService(caller));
    }

    [Fact]
    public void ConfiguredServiceRole_ReplacesTheDefault()
    {
        var policy = new FeedAccessPolicy(Options.Create(new AuthOptions { ServiceRole = "edge.admin" }));

        Assert.Equal("bob", policy.ResolveFeedOwner(CallerContext.With(("sub", "svc"), ("scope", "edge.admin")), "bob"));
        Assert.Throws<RpcException>(() => policy.ResolveFeedOwner(CallerContext.With(("sub", "svc"), ("role", "feed.service")), "bob"));
    }

    [Fact]
    public void AnonymousCaller_Unauthenticated_EvenForAnEmptyId()
    {
        Assert.Equal(StatusCode.Unauthenticated, Assert.Throws<RpcException>(() => _policy.ResolveFeedOwner(CallerContext.Anonymous(), "")).StatusCode);
        Assert.Equal(StatusCode.Unauthenticated, Assert.Throws<RpcException>(() => _policy.ResolveActor(CallerContext.Anonymous(), "author_id", "alice")).StatusCode);
    }

    [Fact]
    public void TokenWithoutSubject_Unauthenticated()
    {
        var error = Assert.Throws<RpcException>(() => _policy.ResolveFeedOwner(CallerContext.With(("role", "feed.service")), "bob"));

        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.Contains("'sub'", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void MalformedUserId_InvalidArgument_ForServicesToo()
    {
        var error = Assert.Throws<RpcException>(() => _policy.ResolveFeedOwner(CallerContext.With(("sub", "svc"), ("role", "feed.service")), "a|b"));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.StartsWith("user_id contains '|'", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void SubjectThatIsNoValidUserId_PermissionDeniedForItsOwnFeed() =>
        Assert.Equal(StatusCode.PermissionDenied, Assert.Throws<RpcException>(() => _policy.ResolveFeedOwner(CallerContext.With(("sub", "auth0|123")), "")).StatusCode);

    [Fact]
    public void WritingAsYourself_IsAllowed() =>
        Assert.Equal("alice", _policy.ResolveActor(CallerContext.With(("sub", "alice")), "author_id", "alice"));

    [Fact]
    public void WritingAsAnotherUser_PermissionDenied()
    {
        var error = Assert.Throws<RpcException>(() => _policy.ResolveActor(CallerContext.With(("sub", "alice")), "follower_id", "bob"));

        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
        Assert.StartsWith("follower_id 'bob' is not the caller", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void ServiceRole_MayWriteForAnyUser() =>
        Assert.Equal("bob", _policy.ResolveActor(CallerContext.With(("sub", "ingest-bridge"), ("scope", "feed.service")), "author_id", "bob"));

    [Fact]
    public void EmptyActor_ForAUser_IsTheCaller() =>
        Assert.Equal("alice", _policy.ResolveActor(CallerContext.With(("sub", "alice")), "author_id", ""));

    [Fact]
    public void EmptyActor_ForAService_IsInvalidArgument_BecauseAServiceMustSayForWhom()
    {
        var error = Assert.Throws<RpcException>(() => _policy.ResolveActor(CallerContext.With(("sub", "ingest-bridge"), ("scope", "feed.service")), "author_id", ""));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("author_id is required", error.Status.Detail);
    }
}
