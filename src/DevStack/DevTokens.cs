using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pipeline.StreamEdge.Auth;

namespace Pipeline.DevStack;

/// <summary>
/// Mints the JWTs the development stack accepts: HS256, signed with a key that is published in this file and in
/// the README. It exists so that local clients, the demo traffic and the tests can authenticate; never configure
/// it on an edge that serves anyone but yourself.
/// </summary>
public sealed class DevTokens
{
    public const string Issuer = "feed-pipeline-dev";

    public const string Audience = "feed-edge";

    /// <summary>
    /// DEVELOPMENT ONLY, PUBLIC. Base64 of "feed-pipeline DEVELOPMENT key: public, local use only!". Anyone can
    /// sign tokens with it, which is the point on a laptop and a disaster anywhere else.
    /// </summary>
    public const string SigningKey = "ZmVlZC1waXBlbGluZSBERVZFTE9QTUVOVCBrZXk6IHB1YmxpYywgbG9jYWwgdXNlIG9ubHkh";

    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromHours(1);

    private static readonly JsonWebTokenHandler Handler = new();

    private readonly SigningCredentials _credentials;
    private readonly string _issuer;
    private readonly string _audience;
    private readonly TimeProvider _clock;

    /// <summary>Tokens for the development stack's configuration; the other arguments exist to make tokens it must refuse.</summary>
    public DevTokens(string signingKey = SigningKey, string issuer = Issuer, string audience = Audience, TimeProvider? clock = null)
    {
        _credentials = new SigningCredentials(new SymmetricSecurityKey(Convert.FromBase64String(signingKey)), SecurityAlgorithms.HmacSha256);
        _issuer = issuer;
        _audience = audience;
        _clock = clock ?? TimeProvider.System;
    }

    /// <summary>A signed token whose subject is <paramref name="subject"/>; <paramref name="service"/> adds the service role.</summary>
    public string Mint(string subject, bool service = false, TimeSpan? lifetime = null)
    {
        var now = _clock.GetUtcNow().UtcDateTime;
        var claims = new Dictionary<string, object> { [FeedClaims.Subject] = subject };
        if (service)
        {
            claims[FeedClaims.Role] = AuthOptions.DefaultServiceRole;
        }

        return Handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = _issuer,
            Audience = _audience,
            Claims = claims,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + (lifetime ?? DefaultLifetime),
            SigningCredentials = _credentials,
        });
    }

    /// <summary>Channel options under which every call carries a freshly minted token for <paramref name="subject"/>.</summary>
    public GrpcChannelOptions ChannelOptions(string subject, bool service = false) => BearerChannelOptions(() => Mint(subject, service));

    /// <summary>Channel options under which every call carries "authorization: Bearer {token()}".</summary>
    public static GrpcChannelOptions BearerChannelOptions(Func<string> token)
    {
        var bearer = CallCredentials.FromInterceptor((_, metadata) =>
        {
            metadata.Add("authorization", $"Bearer {token()}");
            return Task.CompletedTask;
        });

        // Grpc.Net.Client sends call credentials only over TLS unless told otherwise; the dev stack is loopback cleartext.
        return new GrpcChannelOptions
        {
            Credentials = ChannelCredentials.Create(ChannelCredentials.Insecure, bearer),
            UnsafeUseInsecureChannelCallCredentials = true,
        };
    }
}
