using Confluent.Kafka;
using Pipeline.Processor;
using Streamiz.Kafka.Net;

namespace Pipeline.UnitTests.Processor;

public sealed class FeedStreamConfigTests
{
    private static FeedStreamConfig Config() =>
        FeedProcessorService.StreamConfigFor(new ProcessorOptions { ApplicationId = "feeds" }, new ClientConfig { BootstrapServers = "127.0.0.1:9092", TopicMetadataRefreshIntervalMs = 60_000 });

    /// <summary>As Streamiz asks: through the interface, which is the point of the test.</summary>
#pragma warning disable CA1859 // The interface call is what is under test.
    private static AdminClientConfig AdminConfig(IStreamConfig config, string clientId) => config.ToAdminConfig(clientId);
#pragma warning restore CA1859

    /// <summary>Streamiz holds the configuration as IStreamConfig: the per-record request must reach the cache through it.</summary>
    [Fact]
    public void ThePerRecordAdminConfig_IsBuiltOnce_AndCarriesTheSettings()
    {
        var config = Config();

        var first = AdminConfig(config, "");

        Assert.Same(first, AdminConfig(config, ""));
        Assert.Equal("127.0.0.1:9092", first.BootstrapServers);
        Assert.Equal(60_000, first.TopicMetadataRefreshIntervalMs);
    }

    [Fact]
    public void LatencySettings_ReachStreamizAndItsClients()
    {
        var config = FeedProcessorService.StreamConfigFor(
            new ProcessorOptions { ApplicationId = "feeds", PollMs = 7, FetchWaitMaxMs = 12, LingerMs = 3, CommitIntervalMs = 250 },
            new ClientConfig { BootstrapServers = "127.0.0.1:9092" });

        Assert.Equal(7, config.PollMs);
        Assert.Equal(12, config.ToConsumerConfig().FetchWaitMaxMs);
        Assert.Equal(3, config.ToProducerConfig().LingerMs);
        Assert.Equal(250, config.CommitIntervalMs);
    }

    /// <summary>Unset, the commit interval is the guarantee's, as in Kafka Streams; set, it is taken as given.</summary>
    [Theory]
    [InlineData(DeliveryGuarantee.ExactlyOnce, null, 100)]
    [InlineData(DeliveryGuarantee.AtLeastOnce, null, 30_000)]
    [InlineData(DeliveryGuarantee.AtLeastOnce, 500, 500)]
    [InlineData(DeliveryGuarantee.ExactlyOnce, 1_000, 1_000)]
    public void CommitInterval_DefaultsByGuarantee(DeliveryGuarantee guarantee, int? configured, int expected)
    {
        var config = FeedProcessorService.StreamConfigFor(
            new ProcessorOptions { ApplicationId = "feeds", Guarantee = guarantee, CommitIntervalMs = configured },
            new ClientConfig { BootstrapServers = "127.0.0.1:9092" });

        Assert.Equal(expected, config.CommitIntervalMs);
    }

    [Fact]
    public void NamedAdminClients_GetTheirOwnConfiguration()
    {
        var config = Config();

        var named = AdminConfig(config, "feeds-admin");

        Assert.NotSame(named, AdminConfig(config, "feeds-admin"));
        Assert.Equal("feeds-admin", named.ClientId);
        Assert.Equal("127.0.0.1:9092", named.BootstrapServers);
    }
}
