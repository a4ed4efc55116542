using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;

namespace Pipeline.StreamEdge.Auth;

/// <summary>
/// Admits only authenticated callers to the endpoints marked with <see cref="EdgeAuthExtensions.RequireFeedCaller"/>
/// (the feed and ingest services), in place of ASP.NET Core's authentication and authorization middleware. A caller
/// whose token this edge validated before is admitted from <see cref="ValidatedTokenCache"/>; any other goes through
/// the JWT bearer handler (<see cref="JwtBearerSetup"/>: full validation, and the UNAUTHENTICATED answer with its
/// reason when refused). Nothing else ever reaches those endpoints.
/// </summary>
/// <remarks>
/// Why not the stock middleware: each is an async frame around the rest of the pipeline, so an open Subscribe
/// stream holds its state for its whole life: two state machines, the authentication result and ticket, the
/// request's scoped authentication and authorization services, and <c>HttpContext.Items</c>. A gcdump of 10,000
/// streams put that at about 1.9 KB per subscriber (BENCHMARKS.md, "Memory per subscriber"). This gate returns
/// the next middleware's task instead of awaiting it, and a cached caller touches no scoped service, so an open
/// stream keeps nothing of its admission but the caller itself.
/// </remarks>
public sealed class FeedCallerGate(RequestDelegate next, ValidatedTokenCache validated)
{
    /// <summary>The endpoint metadata that puts an endpoint behind this gate.</summary>
    public static readonly object Required = new FeedCallerRequired();

    /// <summary>Whether <paramref name="endpoint"/> is behind this gate (the feed and ingest services).</summary>
    public static bool Guards(Endpoint? endpoint) => endpoint?.Metadata.GetMetadata<FeedCallerRequired>() is not null;

    public Task InvokeAsync(HttpContext context)
    {
        if (!Guards(context.GetEndpoint()))
        {
            return next(context);
        }

        if (validated.TryGet(context.Request.Headers.Authorization, out var caller))
        {
            context.User = caller!;
            return next(context);
        }

        var authenticating = context.AuthenticateAsync(JwtBearerDefaults.AuthenticationScheme);
        return authenticating.IsCompletedSuccessfully ? Admit(context, authenticating.Result) : AdmitWhenAuthenticatedAsync(context, authenticating);
    }

    private Task Admit(HttpContext context, AuthenticateResult result)
    {
        if (result.Succeeded && result.Principal.Identity?.IsAuthenticated == true)
        {
            context.User = result.Principal;
            return next(context);
        }

        // No token, or a refused one: the bearer handler's challenge answers with UNAUTHENTICATED and the reason.
        return context.ChallengeAsync(JwtBearerDefaults.AuthenticationScheme);
    }

    private async Task AdmitWhenAuthenticatedAsync(HttpContext context, Task<AuthenticateResult> authenticating) =>
        await Admit(context, await authenticating);

    /// <summary>Marker type, so that no other metadata can be mistaken for it.</summary>
    private sealed class FeedCallerRequired;
}
