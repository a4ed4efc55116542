using System.Diagnostics.Metrics;
using System.Security.Claims;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Pipeline.StreamEdge;
using Pipeline.StreamEdge.Auth;

namespace Pipeline.UnitTests.StreamEdge.Auth;

public sealed class ValidatedTokenCacheTests : IDisposable
{
    private const string Token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    private static readonly TimeSpan Skew = TimeSpan.FromSeconds(30);

    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 28, 12, 0, 0, TimeSpan.Zero));
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().AddSingleton<EdgeMetrics>().BuildServiceProvider();
    private readonly ClaimsPrincipal _alice = new(new ClaimsIdentity([new Claim("sub", "alice")], "Bearer"));

    public void Dispose() => _services.Dispose();

    [Fact]
    public void ValidatedToken_IsFoundUntilItsExpiryPlusTheClockSkew()
    {
        using var cache = Cache();
        cache.Add($"Bearer {Token}", _alice, Now.AddMinutes(2));

        _clock.Advance(TimeSpan.FromMinutes(2) + Skew - TimeSpan.FromMilliseconds(1));
        Assert.True(cache.TryGet($"Bearer {Token}", out var caller));
        Assert.Same(_alice, caller);

        _clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.False(cache.TryGet($"Bearer {Token}", out caller));
        Assert.Null(caller);
    }

    [Fact]
    public void LongLivedToken_IsTrustedOnlyForTheCacheTime()
    {
        using var cache = Cache(cacheTime: TimeSpan.FromMinutes(1));
        cache.Add($"Bearer {Token}", _alice, Now.AddHours(8));

        _clock.Advance(TimeSpan.FromSeconds(59));
        Assert.True(cache.TryGet($"Bearer {Token}", out _));
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.False(cache.TryGet($"Bearer {Token}", out _));
    }

    [Theory]
    [InlineData("a changed signature", $"Bearer {Token}x")]
    [InlineData("a changed payload", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl")]
    [InlineData("no bearer scheme", Token)]
    [InlineData("another scheme", $"Basic {Token}")]
    [InlineData("an empty token", "Bearer  ")]
    [InlineData("no header", null)]
    public void OnlyTheExactTokenIsFound(string what, string? authorization)
    {
        using var cache = Cache();
        cache.Add($"Bearer {Token}", _alice, Now.AddHours(1));

        Assert.False(cache.TryGet(authorization, out var caller), what);
        Assert.Null(caller);
    }

    [Fact]
    public void Lookup_ReadsTheTokenAsTheBearerHandlerDoes()
    {
        using var cache = Cache();
        cache.Add($"Bearer {Token}", _alice, Now.AddHours(1));

        // The scheme is case-insensitive and the token is trimmed, as JwtBearerHandler reads it.
        Assert.True(cache.TryGet($"bearer {Token} ", out var caller));
        Assert.Same(_alice, caller);
    }

    [Fact]
    public void TokenAlreadyExpired_IsNotKept()
    {
        using var cache = Cache();
        cache.Add($"Bearer {Token}", _alice, Now - Skew);

        Assert.False(cache.TryGet($"Bearer {Token}", out _));
    }

    [Theory]
    [InlineData(0, 5)]
    [InlineData(100, 0)]
    public void CacheOff_KeepsNothing(int size, int minutes)
    {
        using var cache = Cache(size, TimeSpan.FromMinutes(minutes));
        cache.Add($"Bearer {Token}", _alice, Now.AddHours(1));

        Assert.False(cache.TryGet($"Bearer {Token}", out _));
    }

    [Fact]
    public void Lookups_AreCountedAsHitsAndMisses()
    {
        using var lookups = new MetricCollector<long>(_services.GetRequiredService<IMeterFactory>(), EdgeMetrics.MeterName, "feed.edge.token_cache_lookups");
        using var cache = Cache();

        Assert.False(cache.TryGet($"Bearer {Token}", out _));
        cache.Add($"Bearer {Token}", _alice, Now.AddHours(1));
        Assert.True(cache.TryGet($"Bearer {Token}", out _));
        Assert.True(cache.TryGet($"Bearer {Token}", out _));

        Assert.Equal(["miss", "hit", "hit"], lookups.GetMeasurementSnapshot().Select(m => (string)m.Tags["result"]!));
    }

    [Fact]
    public void FullCache_KeepsNoMoreThanItsSize()
    {
        using var cache = Cache(size: 2);
        for (var i = 0; i < 10; i++)
        {
            cache.Add($"Bearer {Token}{i}", _alice, Now.AddHours(1));
        }

        // MemoryCache refuses entries past its size limit (and compacts in the background); a token not kept is
        // validated again, so a full cache costs time, never correctness.
        var kept = Enumerable.Range(0, 10).Count(i => cache.TryGet($"Bearer {Token}{i}", out _));
        Assert.InRange(kept, 0, 2);
    }

    private DateTime Now => _clock.GetUtcNow().UtcDateTime;

    private ValidatedTokenCache Cache(int size = 100, TimeSpan? cacheTime = null) =>
        new(
            Options.Create(new AuthOptions { ClockSkew = Skew, TokenCacheSize = size, TokenCacheTime = cacheTime ?? TimeSpan.FromMinutes(5) }),
            _clock,
            _services.GetRequiredService<EdgeMetrics>());
}
