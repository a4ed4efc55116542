using Grpc.AspNetCore.Web;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using Pipeline.Kafka;
using Pipeline.StreamEdge.Api;
using Pipeline.StreamEdge.Auth;
using Pipeline.StreamEdge.Delivery;
using Pipeline.StreamEdge.Ingest;

namespace Pipeline.StreamEdge;

public static class EdgeHostingExtensions
{
    private const string HostingDiagnosticsCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";

    /// <summary>Registers the edge: options, the feed.updates consumer, dispatch, gRPC services and health.</summary>
    public static WebApplicationBuilder AddStreamEdge(this WebApplicationBuilder builder)
    {
        var services = builder.Services;

        // Kestrel binds only its endpoints from configuration; its limits (HTTP/2 keepalive pings, streams per
        // connection) are bound here so that "Kestrel:Limits" in configuration takes effect.
        builder.WebHost.ConfigureKestrel((context, kestrel) => context.Configuration.GetSection("Kestrel:Limits").Bind(kestrel.Limits));

        // ASP.NET Core's hosting keeps a log scope and an Activity (with its tags and execution context) for every
        // request whose hosting log category is enabled at any level, even when nothing is ever logged; an open
        // stream holds them for its whole life: 13 objects and about 620 bytes per subscriber (gcdump of 10,000
        // streams). The category logs only request start and end, so it is off unless configuration names it.
        if (builder.Configuration[$"Logging:LogLevel:{HostingDiagnosticsCategory}"] is null)
        {
            builder.Logging.AddFilter(HostingDiagnosticsCategory, LogLevel.None);
        }

        services.AddKafkaClientConfig();
        services.AddOptions<EdgeOptions>()
            .BindConfiguration(EdgeOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(
                options => AuthOptions.DecodeKey(options.CursorSigningKey) is { Length: >= AuthOptions.MinSigningKeyBytes },
                "Edge:CursorSigningKey must be a base64 key of at least 32 bytes, the same on every edge instance (e.g. openssl rand -base64 32).")
            .ValidateOnStart();

        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<EdgeMetrics>();
        services.AddSingleton<EdgeReadiness>();
        services.AddSingleton<SubscriberRegistry>();
        services.AddSingleton<FeedReplica>();
        services.AddSingleton<PartitionReplay>();
        services.AddSingleton(sp => new CursorCodec(AuthOptions.DecodeKey(sp.GetRequiredService<IOptions<EdgeOptions>>().Value.CursorSigningKey)!));
        services.AddHostedService<HeartbeatTicker>();
        services.AddHostedService<BurstCompactor>();

        // Kestrel's buffers from a pool the edge can trim after a subscribe burst, in place of Kestrel's own.
        services.AddSingleton<BlockPools>();
        services.AddSingleton<IMemoryPoolFactory<byte>>(sp => sp.GetRequiredService<BlockPools>());
        services.AddSingleton<FeedAccessPolicy>();
        services.AddEdgeAuth();
        services.AddSingleton<FeedEventPublisher>();
        services.AddHostedService<FeedUpdatesConsumer>();

        services.AddGrpc(options =>
        {
            // Requests are small (ids and one post body); anything bigger is refused before it is parsed.
            options.MaxReceiveMessageSize = 64 * 1024;
            options.EnableDetailedErrors = builder.Environment.IsDevelopment();
        });
        services.AddGrpcReflection();

        // Stateless over singletons: one instance instead of one per call, which an open stream keeps for its life.
        services.AddSingleton<FeedGrpcService>();
        services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(EdgeMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel")
            .AddRuntimeInstrumentation()
            .AddPrometheusExporter());
        services.AddGrpcHealthChecks().AddCheck<EdgeReadiness>("feed-updates");
        return builder;
    }

    /// <summary>
    /// Maps gRPC (native on the HTTP/2 port, grpc-web on the HTTP/1.1 port), reflection and health. The feed and
    /// ingest services need a JWT; reflection and health stay anonymous for tooling and probes.
    /// </summary>
    public static WebApplication MapStreamEdge(this WebApplication app)
    {
        app.UseGrpcWeb(new GrpcWebOptions { DefaultEnabled = true });
        app.UseBrowserCors();
        app.UseEdgeAuth();
        app.UseMiddleware<NotReadyGate>();
        app.MapGrpcService<FeedGrpcService>().RequireFeedCaller();
        app.MapGrpcService<IngestGrpcService>().RequireFeedCaller();
        app.MapGrpcReflectionService();
        app.MapGrpcHealthChecksService();
        app.MapHealthChecks("/healthz");
        app.MapPrometheusScrapingEndpoint("/metrics");

        // Streams end with UNAVAILABLE (resumable) as soon as shutdown starts, instead of holding the host open, and
        // later subscribes are refused the same way.
        var registry = app.Services.GetRequiredService<SubscriberRegistry>();
        app.Lifetime.ApplicationStopping.Register(registry.Close);
        return app;
    }
}
