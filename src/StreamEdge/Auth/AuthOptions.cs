using System.ComponentModel.DataAnnotations;

namespace Pipeline.StreamEdge.Auth;

/// <summary>
/// The "Auth" configuration section: how the edge validates the JWT bearer token every feed and ingest call
/// carries. Production names an OIDC <see cref="Authority"/>; development signs tokens with shared
/// <see cref="SigningKeys"/>. Exactly one of the two must be set.
/// </summary>
public sealed class AuthOptions : IValidatableObject
{
    public const string SectionName = "Auth";

    public const string DefaultServiceRole = "feed.service";

    /// <summary>HMAC keys below 256 bits are refused by the token library for HS256, so they are refused at start instead.</summary>
    public const int MinSigningKeyBytes = 32;

    /// <summary>Expected "iss". Required with <see cref="SigningKeys"/>; with an authority it defaults to the one its discovery document names.</summary>
    public string? Issuer { get; set; }

    /// <summary>Expected "aud".</summary>
    [Required(ErrorMessage = "Auth:Audience is required: the 'aud' value tokens for this edge carry (development: feed-edge)")]
    public string Audience { get; set; } = "";

    /// <summary>OIDC authority (production): signing keys and issuer come from its discovery document.</summary>
    public string? Authority { get; set; }

    /// <summary>Base64 symmetric keys (HS256) that may sign tokens; more than one allows rotation.</summary>
    public IList<string> SigningKeys { get; } = [];

    /// <summary>
    /// Role or scope of trusted services: they may read any user's feed and write on behalf of any user
    /// (ingest bridges). Accepted as a "role"/"roles" claim or as one of the space-separated values of "scope".
    /// </summary>
    [Required]
    [RegularExpression(@"^\S+$", ErrorMessage = "Auth:ServiceRole must be a single word: it is matched against the space-separated 'scope' claim")]
    public string ServiceRole { get; set; } = DefaultServiceRole;

    /// <summary>Tolerated clock difference between the token issuer and the edge when checking exp/nbf.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Validated tokens kept, so a token that opens many streams (a service's, or a client's after an edge restart)
    /// is checked once (<see cref="ValidatedTokenCache"/>); 0 turns the cache off.
    /// </summary>
    [Range(0, 1_000_000)]
    public int TokenCacheSize { get; set; } = 10_000;

    /// <summary>
    /// The longest a validated token is trusted without being checked again; a token never outlives its own expiry.
    /// Bounds how long a signing key removed from <see cref="SigningKeys"/> or the authority's key set is still
    /// honoured for tokens seen before its removal.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan TokenCacheTime { get; set; } = TimeSpan.FromMinutes(5);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        var hasAuthority = !string.IsNullOrWhiteSpace(Authority);
        if (hasAuthority == SigningKeys.Count > 0)
        {
            yield return new ValidationResult(
                "set exactly one of Auth:Authority (production: OIDC discovery) or Auth:SigningKeys (development: base64 HS256 keys)",
                [nameof(Authority), nameof(SigningKeys)]);
        }

        if (!hasAuthority && string.IsNullOrWhiteSpace(Issuer))
        {
            yield return new ValidationResult("Auth:Issuer is required with Auth:SigningKeys (development: feed-pipeline-dev)", [nameof(Issuer)]);
        }

        for (var i = 0; i < SigningKeys.Count; i++)
        {
            if (DecodeKey(SigningKeys[i]) is not { Length: >= MinSigningKeyBytes })
            {
                yield return new ValidationResult($"Auth:SigningKeys:{i} must be base64 of at least {MinSigningKeyBytes} bytes", [nameof(SigningKeys)]);
            }
        }
    }

    /// <summary>The decoded key, or null when it is not base64.</summary>
    public static byte[]? DecodeKey(string base64)
    {
        var buffer = new byte[base64.Length];
        return Convert.TryFromBase64String(base64, buffer, out var written) ? buffer[..written] : null;
    }
}
