using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Pipeline.StreamEdge.Auth;

/// <summary>JWT bearer authentication for the gRPC services and the CORS allow-list for grpc-web in browsers.</summary>
public static class EdgeAuthExtensions
{
    /// <summary>Request headers a grpc-web client sends; Grpc-Accept-Encoding comes from Grpc.Net.Client.Web in Blazor.</summary>
    private static readonly string[] GrpcWebRequestHeaders = ["Content-Type", "X-Grpc-Web", "X-User-Agent", "Grpc-Timeout", "Grpc-Accept-Encoding", "Authorization"];

    /// <summary>Only what a grpc-web client must read: a trailers-only error carries its status in these headers.</summary>
    private static readonly string[] GrpcResponseHeaders = ["Grpc-Status", "Grpc-Message", "Grpc-Encoding", "Grpc-Accept-Encoding"];

    /// <summary>The application property <c>UseAuthentication</c> sets and <c>WebApplication</c> checks before adding it.</summary>
    private const string AuthenticationMiddlewareSetKey = "__AuthenticationMiddlewareSet";

    public static IServiceCollection AddEdgeAuth(this IServiceCollection services)
    {
        services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<BrowserCorsOptions>().BindConfiguration(BrowserCorsOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        services.AddSingleton<ValidatedTokenCache>();
        services.ConfigureOptions<JwtBearerSetup>();
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer();

        services.AddCors();
        services.AddOptions<CorsOptions>().Configure<IOptions<BrowserCorsOptions>>((cors, browser) => cors.AddPolicy(BrowserCorsOptions.PolicyName, policy =>
        {
            policy.WithOrigins([.. browser.Value.AllowedOrigins])
                .WithMethods(HttpMethods.Post)
                .WithHeaders(GrpcWebRequestHeaders)
                .WithExposedHeaders(GrpcResponseHeaders)
                .SetPreflightMaxAge(browser.Value.PreflightMaxAge);
            if (browser.Value.AllowCredentials)
            {
                policy.AllowCredentials();
            }
        }));
        return services;
    }

    /// <summary>
    /// The caller gate (<see cref="FeedCallerGate"/>), which authenticates the callers of the endpoints that need one.
    /// <c>MapStreamEdge</c> puts the browser CORS policy (<see cref="UseBrowserCors"/>) in front of it and the not-ready
    /// gate after it.
    /// </summary>
    public static WebApplication UseEdgeAuth(this WebApplication app)
    {
        // WebApplication adds ASP.NET Core's authentication middleware in front of the whole pipeline by itself when
        // the authentication services are registered (as the bearer handler needs), unless the app has added it. The
        // gate takes its place, so the app records, under the key UseAuthentication sets, that authentication is
        // handled here. Without this every request would be authenticated twice and every open stream would keep the
        // middleware's state (the edge's tests count token validations per call, which would catch it).
        ((IApplicationBuilder)app).Properties[AuthenticationMiddlewareSetKey] = true;
        app.UseMiddleware<FeedCallerGate>();
        return app;
    }

    /// <summary>
    /// The browser policy (<see cref="BrowserCorsOptions"/>) for the endpoints behind the caller gate, on requests
    /// that carry an <c>Origin</c> (browsers send it on every grpc-web call and preflight). It goes before the gate:
    /// a preflight carries no token.
    /// </summary>
    /// <remarks>
    /// Not as endpoint CORS metadata: with that, the CORS middleware marks every request to those endpoints in
    /// <c>HttpContext.Items</c> (for the endpoint's own check that it ran), and an open native-gRPC stream, which has
    /// no Origin, kept that dictionary for its whole life: about 220 bytes per subscriber. Other endpoints (health,
    /// metrics, reflection) get no CORS answer, as before.
    /// </remarks>
    public static WebApplication UseBrowserCors(this WebApplication app)
    {
        app.UseWhen(
            static context => context.Request.Headers.ContainsKey(HeaderNames.Origin) && FeedCallerGate.Guards(context.GetEndpoint()),
            static browser => browser.UseCors(BrowserCorsOptions.PolicyName));
        return app;
    }

    /// <summary>For the feed and ingest services: an authenticated caller (<see cref="UseEdgeAuth"/>), and grpc-web from allowed origins (<see cref="UseBrowserCors"/>).</summary>
    public static TBuilder RequireFeedCaller<TBuilder>(this TBuilder endpoints)
        where TBuilder : IEndpointConventionBuilder =>
        endpoints.WithMetadata(FeedCallerGate.Required);
}
