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
}
