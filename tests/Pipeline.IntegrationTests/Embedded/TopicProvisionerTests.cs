using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Pipeline.Kafka.Embedded;
using Pipeline.Kafka.Topics;

namespace Pipeline.IntegrationTests.Embedded;

public sealed class TopicProvisionerTests
{
    private static readonly TimeSpan Timeout = KafkaTestSupport.Timeout;

    private static readonly TopicSpec[] Specs =
    [
        new("prov.events", 6, 3, TimeSpan.FromDays(7), Compacted: false),
        new("prov.state", 3, 1, Retention: null, Compacted: true),
        new("prov.single", 1, 1, Retention: null, Compacted: false),
    ];

    [Fact]
    public async Task EnsureAsync_OnEmbeddedCluster_CreatesTopicsWithRequestedPartitionsAndIsIdempotent()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        var logger = new CapturingLogger<TopicProvisioner>();
        var provisioner = new TopicProvisioner(cluster.BootstrapServers, cluster, logger);
        using var cancellation = new CancellationTokenSource(Timeout);

        await provisioner.EnsureAsync(Specs, cancellation.Token).WaitAsync(Timeout);
        var createdFirst = CreatedTopics(logger);
        logger.Clear();
        await provisioner.EnsureAsync(Specs, cancellation.Token).WaitAsync(Timeout);

        Assert.Equal(Specs.Select(spec => spec.Name).Order(StringComparer.Ordinal), createdFirst.Order(StringComparer.Ordinal));
        Assert.Empty(CreatedTopics(logger));
        Assert.DoesNotContain(logger.Entries, entry => entry.Level >= LogLevel.Warning);

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        var partitions = admin.GetMetadata(Timeout).Topics.ToDictionary(topic => topic.Topic, topic => topic.Partitions.Count);
        foreach (var spec in Specs)
        {
            Assert.Equal(spec.Partitions, partitions[spec.Name]);
        }
    }

    [Fact]
    public async Task EnsureAsync_WhenTopicExistsWithOtherPartitionCount_LeavesItAndWarns()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        cluster.CreateTopic("prov.events", 4, 1);
        var logger = new CapturingLogger<TopicProvisioner>();
        var provisioner = new TopicProvisioner(cluster.BootstrapServers, cluster, logger);
        using var cancellation = new CancellationTokenSource(Timeout);

        await provisioner.EnsureAsync(Specs, cancellation.Token).WaitAsync(Timeout);

        var warning = Assert.Single(logger.Entries, entry => entry.Level == LogLevel.Warning);
        Assert.Contains("prov.events", warning.Message, StringComparison.Ordinal);
        Assert.Contains("4 partition(s) but 6 were requested", warning.Message, StringComparison.Ordinal);
        Assert.Equal(["prov.single", "prov.state"], CreatedTopics(logger).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task EnsureAsync_ThroughAdminApiAgainstTheMock_FailsFastWithTheBrokersReason()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        var provisioner = new TopicProvisioner(cluster.BootstrapServers, embedded: null, new CapturingLogger<TopicProvisioner>());
        using var cancellation = new CancellationTokenSource(Timeout);

        var failure = await Assert.ThrowsAnyAsync<KafkaException>(() => provisioner.EnsureAsync(Specs, cancellation.Token).WaitAsync(Timeout));

        Assert.Contains("not supported by broker", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EnsureAsync_ThroughAdminApiWhenAllTopicsExist_CreatesNothingAndWarnsAboutMismatches()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        cluster.CreateTopic("prov.events", 4, 1);
        cluster.CreateTopic("prov.state", 3, 1);
        cluster.CreateTopic("prov.single", 1, 1);
        var logger = new CapturingLogger<TopicProvisioner>();
        var provisioner = new TopicProvisioner(cluster.BootstrapServers, embedded: null, logger);
        using var cancellation = new CancellationTokenSource(Timeout);

        await provisioner.EnsureAsync(Specs, cancellation.Token).WaitAsync(Timeout);

        Assert.Empty(CreatedTopics(logger));
        var warning = Assert.Single(logger.Entries, entry => entry.Level == LogLevel.Warning);
        Assert.Contains("prov.events already exists with 4 partition(s) but 6 were requested", warning.Message, StringComparison.Ordinal);
    }

    private static List<string> CreatedTopics(CapturingLogger<TopicProvisioner> logger) =>
        logger.Entries
            .Where(entry => entry.Level == LogLevel.Information && entry.Message.StartsWith("Created topic ", StringComparison.Ordinal))
            .Select(entry => entry.Message["Created topic ".Length..].Split(':')[0])
            .ToList();
}
