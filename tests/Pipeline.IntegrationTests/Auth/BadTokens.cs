using System.Text;
using Grpc.Net.Client;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pipeline.DevStack;
using Pipeline.StreamEdge.Auth;

namespace Pipeline.IntegrationTests.Auth;

/// <summary>
/// Tokens the edge must refuse, each naming the victim as its subject: if any of them were accepted, the caller
/// would read the victim's feed, so a refusal is what keeps the data private.
/// </summary>
internal static class BadTokens
{
    /// <summary>A key of a valid size that the edge does not know.</summary>
    private const string ForeignKey = "c29tZW9uZSBlbHNlJ3Mga2V5LCBub3QgdGhlIGZlZWQgcGlwZWxpbmUncw==";

    /// <summary>Kind of bad token, and the words the refusal must contain so the client knows what to fix.</summary>
    public static TheoryData<string, string> Kinds => new()
    {
        { "missing", "needs a JWT" },
        { "malformed", "not a well-formed JWT" },
        { "expired", "expired" },
        { "not yet valid", "not valid yet" },
        { "no expiry", "no expiry" },
        { "wrong issuer", "issuer" },
        { "wrong audience", "audience" },
        { "signed with another key", "signature" },
        { "subject swapped after signing", "signature" },
        { "alg none", "signature" },
    };

    /// <summary>The raw token of <paramref name="kind"/> claiming <paramref name="subject"/>; null for "missing".</summary>
    public static string? Create(string kind, string subject) => kind switch
    {
        "missing" => null,
        "malformed" => "not-a-jwt",

        // One-hour tokens minted two hours ago or two hours ahead: far beyond the 30 s clock skew.
        "expired" => new DevTokens(clock: new ShiftedClock(TimeSpan.FromHours(-2))).Mint(subject),
        "not yet valid" => new DevTokens(clock: new ShiftedClock(TimeSpan.FromHours(2))).Mint(subject),
        "no expiry" => WithoutExpiry(subject),
        "wrong issuer" => new DevTokens(issuer: "someone-else").Mint(subject),
        "wrong audience" => new DevTokens(audience: "another-api").Mint(subject),
        "signed with another key" => new DevTokens(signingKey: ForeignKey).Mint(subject),
        "subject swapped after signing" => SwapPayload(new DevTokens().Mint(subject), new DevTokens().Mint("intruder")),
        "alg none" => Unsigned(new DevTokens().Mint(subject)),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown bad-token kind"),
    };

    /// <summary>Channel options whose calls carry exactly <paramref name="token"/>, or no authorization at all.</summary>
    public static GrpcChannelOptions ChannelOptions(string? token) =>
        token is null ? new GrpcChannelOptions() : DevTokens.BearerChannelOptions(() => token);

    /// <summary>The intruder's signature on the victim's claims.</summary>
    private static string SwapPayload(string victims, string intruders)
    {
        var victim = victims.Split('.');
        var intruder = intruders.Split('.');
        return $"{intruder[0]}.{victim[1]}.{intruder[2]}";
    }

    /// <summary>The same claims with "alg": "none" and the signature stripped: the classic downgrade.</summary>
    private static string Unsigned(string token) =>
        $"{Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes("""{"alg":"none","typ":"JWT"}"""))}.{token.Split('.')[1]}.";

    private static string WithoutExpiry(string subject) =>
        new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = DevTokens.Issuer,
            Audience = DevTokens.Audience,
            Claims = new Dictionary<string, object> { [FeedClaims.Subject] = subject },
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Convert.FromBase64String(DevTokens.SigningKey)), SecurityAlgorithms.HmacSha256),
        });

    private sealed class ShiftedClock(TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + offset;
    }
}
