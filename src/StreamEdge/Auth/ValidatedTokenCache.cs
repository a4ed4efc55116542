using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Pipeline.StreamEdge.Auth;

/// <summary>
/// Bearer tokens this edge has validated, with the caller each one stands for, until the token expires (as the
/// validator counts it: <c>exp</c> plus <see cref="AuthOptions.ClockSkew"/>) or <see cref="AuthOptions.TokenCacheTime"/>
/// has passed, whichever is first. A service opens thousands of streams with one token, and after an edge restart
/// they all come back at once; validating each (parsing, an HMAC or RSA check, the claims) was 15–17 % of a
/// subscribe's CPU. Only tokens that passed every check are kept, keyed by a SHA-256 of their exact text, so a
/// token differing in any character is validated afresh; the cache holds digests, never token text.
/// </summary>
public sealed class ValidatedTokenCache : IDisposable
{
    private const string BearerPrefix = "Bearer ";

    /// <summary>Tokens longer than this (characters) are not cached: the digest's buffer lives on the stack.</summary>
    private const int MaxCachedTokenLength = 4 * 1024;

    private readonly MemoryCache? _cache;
    private readonly TimeProvider _clock;
    private readonly TimeSpan _clockSkew;
    private readonly TimeSpan _cacheTime;
    private readonly EdgeMetrics _metrics;

    public ValidatedTokenCache(IOptions<AuthOptions> options, TimeProvider clock, EdgeMetrics metrics)
    {
        var auth = options.Value;
        _clock = clock;
        _metrics = metrics;
        _clockSkew = auth.ClockSkew;
        _cacheTime = auth.TokenCacheTime;
        if (auth.TokenCacheSize > 0 && auth.TokenCacheTime > TimeSpan.Zero)
        {
            _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = auth.TokenCacheSize });
        }
    }

    /// <summary>The caller of an <c>Authorization</c> header whose token was validated before and is still valid.</summary>
    public bool TryGet(string? authorization, out ClaimsPrincipal? caller)
    {
        caller = null;
        if (_cache is null || Digest(authorization) is not { } key)
        {
            return false;
        }

        if (_cache.TryGetValue(key, out Entry? entry) && entry!.ValidUntil > _clock.GetUtcNow())
        {
            caller = entry.Caller;
            _metrics.TokenChecked(cached: true);
            return true;
        }

        _metrics.TokenChecked(cached: false);
        return false;
    }

    /// <summary>
    /// Keeps the caller of a token that just passed validation. <paramref name="caller"/> is shared by every call
    /// that presents the token, so it must not be changed after this (the edge only reads claims).
    /// </summary>
    public void Add(string? authorization, ClaimsPrincipal caller, DateTime expiresUtc)
    {
        if (_cache is null || Digest(authorization) is not { } key)
        {
            return;
        }

        var now = _clock.GetUtcNow();
        var validUntil = new DateTimeOffset(DateTime.SpecifyKind(expiresUtc, DateTimeKind.Utc)) + _clockSkew;
        if (validUntil <= now)
        {
            return;
        }

        if (validUntil > now + _cacheTime)
        {
            validUntil = now + _cacheTime;
        }

        _cache.Set(key, new Entry(caller, validUntil), new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = validUntil - now });
    }

    public void Dispose() => _cache?.Dispose();

    /// <summary>The token's digest, read from the header exactly as the bearer handler reads the token; null without one.</summary>
    private static TokenDigest? Digest(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var token = authorization.AsSpan(BearerPrefix.Length).Trim();
        if (token.IsEmpty || token.Length > MaxCachedTokenLength)
        {
            return null;
        }

        Span<byte> text = stackalloc byte[Encoding.UTF8.GetMaxByteCount(token.Length)];
        var length = Encoding.UTF8.GetBytes(token, text);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(text[..length], hash);
        return new TokenDigest(BitConverter.ToUInt128(hash), BitConverter.ToUInt128(hash[16..]));
    }

    private readonly record struct TokenDigest(UInt128 Low, UInt128 High);

    private sealed record Entry(ClaimsPrincipal Caller, DateTimeOffset ValidUntil);
}
