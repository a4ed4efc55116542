using System.Security.Claims;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace Pipeline.UnitTests.StreamEdge.Auth;

/// <summary>
/// A ServerCallContext carrying an HttpContext whose user holds the given claims, as JwtBearer leaves it after a
/// valid token. GetHttpContext() finds it under the "__HttpContext" user-state key grpc-dotnet documents for
/// custom call contexts.
/// </summary>
internal sealed class CallerContext : ServerCallContext
{
    private CallerContext(ClaimsPrincipal user)
    {
        UserState["__HttpContext"] = new DefaultHttpContext { User = user };
    }

    /// <summary>An authenticated caller with these claims (type, value); pass ("sub", id) for a subject.</summary>
    public static CallerContext With(params (string Type, string Value)[] claims) =>
        new(new ClaimsPrincipal(new ClaimsIdentity(claims.Select(c => new Claim(c.Type, c.Value)), authenticationType: "Bearer", nameType: "sub", roleType: "role")));

    /// <summary>A caller whose user is exactly <paramref name="user"/>.</summary>
    public static CallerContext For(ClaimsPrincipal user) => new(user);

    public static CallerContext Anonymous() => new(new ClaimsPrincipal(new ClaimsIdentity()));

    protected override string MethodCore => "/feed.v1.FeedService/Subscribe";

    protected override string HostCore => "127.0.0.1";

    protected override string PeerCore => "ipv4:127.0.0.1:1";

    protected override DateTime DeadlineCore => DateTime.MaxValue;

    protected override Metadata RequestHeadersCore { get; } = [];

    protected override CancellationToken CancellationTokenCore => CancellationToken.None;

    protected override Metadata ResponseTrailersCore { get; } = [];

    protected override Status StatusCore { get; set; }

    protected override WriteOptions? WriteOptionsCore { get; set; }

    protected override AuthContext AuthContextCore => new(null, []);

    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();

    protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
}
