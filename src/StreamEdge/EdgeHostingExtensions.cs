using Grpc.AspNetCore.Web;
using Pipeline.Kafka;
using Pipeline.StreamEdge.Api;
using Pipeline.StreamEdge.Auth;
using Pipeline.StreamEdge.Delivery;
using Pipeline.StreamEdge.Ingest;

namespace Pipeline.StreamEdge;

public static class EdgeHostingExtensions
{
    /// <summary>Registers the edge: options, the feed.updates consumer, dispatch, gRPC services and health.</summary>
    public static WebApplicationBuilder AddStreamEdge(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddKafkaClientConfig();
        services.AddOptions<EdgeOptions>().BindConfiguration(EdgeOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<EdgeMetrics>();
        services.AddSingleton<EdgeReadiness>();
        services.AddSingleton<SubscriberRegistry>();
        services.AddSingleton<FeedAccessPolicy>();
        services.AddSingleton<FeedEventPublisher>();
        services.AddHostedService<FeedUpdatesConsumer>();

        services.AddGrpc(options =>
        {
            // Requests are small (ids and one post body); anything bigger is refused before it is parsed.
            options.MaxReceiveMessageSize = 64 * 1024;
            options.EnableDetailedErrors = builder.Environment.IsDevelopment();
        });
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks().AddCheck<EdgeReadiness>("feed-updates");
        return builder;
    }

    /// <summary>Maps gRPC (native on the HTTP/2 port, grpc-web on the HTTP/1.1 port), reflection and health.</summary>
    public static WebApplication MapStreamEdge(this WebApplication app)
    {
        app.UseGrpcWeb(new GrpcWebOptions { DefaultEnabled = true });
        app.MapGrpcService<FeedGrpcService>();
        app.MapGrpcService<IngestGrpcService>();
        app.MapGrpcReflectionService();
        app.MapGrpcHealthChecksService();
        app.MapHealthChecks("/healthz");

        // Streams end with UNAVAILABLE (resumable) as soon as shutdown starts, instead of holding the host open.
        var registry = app.Services.GetRequiredService<SubscriberRegistry>();
        app.Lifetime.ApplicationStopping.Register(registry.CompleteAll);
        return app;
    }
}
