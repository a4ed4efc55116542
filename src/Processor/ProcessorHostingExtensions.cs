using Pipeline.Kafka;

namespace Pipeline.Processor;

public static class ProcessorHostingExtensions
{
    /// <summary>Registers the feed processor: validated options, metrics, the topic plan and the hosted stream.</summary>
    public static IServiceCollection AddFeedProcessor(this IServiceCollection services)
    {
        services.AddKafkaClientConfig();
        services.AddOptions<ProcessorOptions>().BindConfiguration(ProcessorOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<ProcessorMetrics>();
        services.AddSingleton<FeedTopicPlan>();
        services.AddSingleton<FeedProcessorService>();
        services.AddHostedService(sp => sp.GetRequiredService<FeedProcessorService>());
        return services;
    }
}
