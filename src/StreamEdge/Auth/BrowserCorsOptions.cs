using System.ComponentModel.DataAnnotations;

namespace Pipeline.StreamEdge.Auth;

/// <summary>
/// The "Cors" configuration section: which browser origins may call the gRPC services over grpc-web.
/// An empty allow-list sends no CORS headers, so only same-origin pages and non-browser clients get through.
/// </summary>
public sealed class BrowserCorsOptions : IValidatableObject
{
    public const string SectionName = "Cors";

    public const string PolicyName = "grpc-web";

    /// <summary>Origins ("https://app.example.com", no path) allowed to call; "*" allows any origin, but never with credentials.</summary>
    public IList<string> AllowedOrigins { get; } = [];

    /// <summary>
    /// Lets browsers send cookies and HTTP authentication. Bearer tokens travel in the Authorization header and do
    /// not need it, so it stays off unless a front end relies on cookies.
    /// </summary>
    public bool AllowCredentials { get; set; }

    /// <summary>How long a browser may cache a preflight answer: without it every streaming call pays an extra round trip.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan PreflightMaxAge { get; set; } = TimeSpan.FromMinutes(10);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        for (var i = 0; i < AllowedOrigins.Count; i++)
        {
            var origin = AllowedOrigins[i];
            if (origin == "*")
            {
                if (AllowCredentials)
                {
                    yield return new ValidationResult(
                        "Cors:AllowedOrigins may not contain \"*\" while Cors:AllowCredentials is true: list the origins explicitly",
                        [nameof(AllowedOrigins)]);
                }
            }
            else if (!IsOrigin(origin))
            {
                yield return new ValidationResult(
                    $"Cors:AllowedOrigins:{i} ('{origin}') must be an origin: scheme, host and optional port, with no path (e.g. https://app.example.com)",
                    [nameof(AllowedOrigins)]);
            }
        }
    }

    // Browsers send the Origin header as scheme://host[:port]; anything with a path or trailing slash would never match.
    private static bool IsOrigin(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri)
        && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
        && string.Equals(uri.GetLeftPart(UriPartial.Authority), value, StringComparison.OrdinalIgnoreCase);
}
