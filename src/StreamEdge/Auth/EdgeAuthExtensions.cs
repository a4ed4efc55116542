using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.Extensions.Options;

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
    /// <c>MapStreamEdge</c> puts CORS (a preflight carries no token) in front of it and the not-ready gate after it.
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

    /// <summary>For the feed and ingest services: an authenticated caller, and grpc-web from allowed origins.</summary>
    public static TBuilder RequireFeedCaller<TBuilder>(this TBuilder endpoints)
        where TBuilder : IEndpointConventionBuilder =>
        endpoints.WithMetadata(FeedCallerGate.Required).RequireCors(BrowserCorsOptions.PolicyName);
}
