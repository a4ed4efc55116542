using System.Security.Claims;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Pipeline.StreamEdge.Auth;

namespace Pipeline.UnitTests.StreamEdge.Auth;

/// <summary>What an open stream keeps of its caller: only the claims the edge reads.</summary>
public sealed class CompactPrincipalTests
{
    [Fact]
    public void KeepsTheClaimsTheEdgeReads_DropsTheRest_AndStillNamesTheCaller()
    {
        var validated = new ClaimsPrincipal(new ClaimsIdentity(
            [
                new Claim("sub", "alice", ClaimValueTypes.String, "issuer"),
                new Claim("roles", "feed-service"),
                new Claim("scope", "feed.read other"),
                new Claim("exp", "1900000000"),
                new Claim("iat", "1800000000"),
                new Claim("aud", "feed-edge"),
                new Claim("email", "alice@example.com"),
            ],
            "AuthenticationTypes.Federation",
            "sub",
            "role"));

        var kept = JwtBearerSetup.Compact(validated);

        Assert.Equal(["sub", "roles", "scope"], kept.Claims.Select(c => c.Type));
        Assert.Equal("alice", kept.Identity!.Name);
        Assert.True(kept.Identity.IsAuthenticated);
        Assert.Equal("issuer", kept.FindFirst("sub")!.Issuer);
    }

    [Theory]
    [InlineData("role", "feed.service")]
    [InlineData("roles", "feed.service")]
    [InlineData("scope", "feed.read feed.service")]
    [InlineData("scope", "feed.read")]
    [InlineData("groups", "feed.service")]
    public void TheAccessPolicy_DecidesTheSame_OnTheCompactPrincipal(string type, string value)
    {
        var policy = new FeedAccessPolicy(Options.Create(new AuthOptions()));
        var validated = new ClaimsPrincipal(new ClaimsIdentity([new Claim("sub", "svc"), new Claim(type, value), new Claim("jti", "x")], "Bearer", "sub", "role"));

        var kept = JwtBearerSetup.Compact(validated);

        Assert.Equal(policy.IsService(CallerContext.For(validated)), policy.IsService(CallerContext.For(kept)));
        Assert.Equal(Owner(policy, validated), Owner(policy, kept));
    }

    private static string Owner(FeedAccessPolicy policy, ClaimsPrincipal caller)
    {
        try
        {
            return policy.ResolveFeedOwner(CallerContext.For(caller), "bob");
        }
        catch (RpcException ex)
        {
            return ex.StatusCode.ToString();
        }
    }
}
