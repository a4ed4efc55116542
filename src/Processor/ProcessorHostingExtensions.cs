using OpenTelemetry.Metrics;
using Pipeline.Kafka;

namespace Pipeline.Processor;

public static class ProcessorHostingExtensions
{
    /// <summary>Registers the feed processor: validated options, metrics, the topic plan and the hosted stream.</summary>
    public static IServiceCollection AddFeedProcessor(this IServiceCollection services)
    {
        services.AddKafkaClientConfig();
        services.AddOptions<ProcessorOptions>().BindConfiguration(ProcessorOptions.SectionName).ValidateDataAnnotations()
            .Validate(
                options => options.StallTimeout <= TimeSpan.Zero || options.StallTimeout >= TimeSpan.FromMilliseconds(3.0 * options.EffectiveCommitIntervalMs),
                "Processor:StallTimeout must be at least three commit intervals (Processor:CommitIntervalMs; unset, 100 ms exactly-once and 30,000 ms at-least-once), or 0 to turn the stall watchdog off: the watchdog reads the group's committed offsets.")
            .ValidateOnStart();
        services.AddSingleton<ProcessorMetrics>();
        services.AddSingleton<FeedTopicPlan>();
        services.AddSingleton<FeedProcessorService>();
        services.AddHostedService(sp => sp.GetRequiredService<FeedProcessorService>());
        services.AddHostedService<ProgressWatchdog>();
        services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter(ProcessorMetrics.MeterName).AddRuntimeInstrumentation());
        return services;
    }

    /// <summary>
    /// Serves the processor's metrics for Prometheus at Processor:MetricsUrl (default http://127.0.0.1:9464/metrics/).
    /// Only for the standalone processor: where it shares a host with the edge, the edge's /metrics includes them.
    /// </summary>
    public static IServiceCollection AddProcessorMetricsEndpoint(this IServiceCollection services, IConfiguration configuration)
    {
        var url = configuration["Processor:MetricsUrl"] ?? "http://127.0.0.1:9464/metrics/";
        services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddPrometheusHttpListener(options => options.ConfigureHttpListener = (_, listener) =>
        {
            listener.Prefixes.Clear();
            listener.Prefixes.Add(url);
        }));
        return services;
    }
}
