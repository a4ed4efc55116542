using System.Collections.Frozen;

namespace Pipeline.StreamEdge.Auth;

/// <summary>
/// JWT claim names the edge reads, as they appear in the token: inbound claim-type mapping is off, so "sub" stays
/// "sub" instead of becoming a SOAP-era URI.
/// </summary>
public static class FeedClaims
{
    public const string Subject = "sub";

    public const string Role = "role";

    public const string Roles = "roles";

    /// <summary>Space-separated OAuth scopes.</summary>
    public const string Scope = "scope";

    /// <summary>
    /// Every claim type the edge reads; the principal kept for a call holds only these (JwtBearerSetup.Compact).
    /// A check on another claim type must add it here.
    /// </summary>
    public static readonly FrozenSet<string> Read = FrozenSet.Create(StringComparer.Ordinal, Subject, Role, Roles, Scope);
}
