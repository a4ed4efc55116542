using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;

namespace Pipeline.Kafka;

public static class KafkaClientOptions
{
    /// <summary>Configuration section bound straight onto Confluent's <see cref="ClientConfig"/>.</summary>
    public const string SectionName = "Kafka";

    /// <summary>
    /// Binds the "Kafka" section onto <see cref="ClientConfig"/> (so every librdkafka client setting Confluent
    /// exposes, e.g. Kafka__BootstrapServers or Kafka__SecurityProtocol, is configurable without re-declaring it)
    /// and fails start-up with an actionable message when the cluster address is missing.
    /// </summary>
    public static IServiceCollection AddKafkaClientConfig(this IServiceCollection services)
    {
        services.AddOptions<ClientConfig>()
            .BindConfiguration(SectionName)
            .Validate(
                config => !string.IsNullOrWhiteSpace(config.BootstrapServers),
                "Kafka:BootstrapServers is not set. Set it in appsettings.json or the environment, e.g. Kafka__BootstrapServers=127.0.0.1:9092.")
            .ValidateOnStart();
        return services;
    }

    /// <summary>
    /// A copy of the shared settings for one client. Confluent's config copy constructors share the underlying
    /// dictionary, so without a copy one client's settings would leak into every other.
    /// </summary>
    public static Dictionary<string, string> Copy(this ClientConfig config) => new(config);
}
