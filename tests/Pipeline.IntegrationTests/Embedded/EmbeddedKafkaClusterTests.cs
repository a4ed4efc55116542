using System.Diagnostics;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Pipeline.Kafka.Embedded;

namespace Pipeline.IntegrationTests.Embedded;

public sealed class EmbeddedKafkaClusterTests
{
    private static readonly TimeSpan Timeout = KafkaTestSupport.Timeout;

    [Fact]
    public async Task ProducedRecords_AreConsumedBackByAGroupInOrderPerPartition()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        const string Topic = "orders";
        const int RecordCount = 60;
        cluster.CreateTopic(Topic, 3, 1);

        var delivered = new List<DeliveryResult<string, string>>();
        using (var producer = KafkaTestSupport.CreateProducer(cluster.BootstrapServers))
        {
            var sends = Enumerable.Range(0, RecordCount)
                .Select(i => producer.ProduceAsync(Topic, new Message<string, string> { Key = $"user-{i % 7}", Value = $"event-{i:D3}" }))
                .ToArray();
            delivered.AddRange(await Task.WhenAll(sends).WaitAsync(Timeout));
        }

        var consumed = await KafkaTestSupport.ConsumeAsync(cluster.BootstrapServers, Topic, RecordCount, Timeout).WaitAsync(Timeout + Timeout);

        Assert.Equal(RecordCount, consumed.Count);
        Assert.All(delivered, result => Assert.Equal(PersistenceStatus.Persisted, result.Status));
        Assert.True(delivered.Select(result => result.Partition.Value).Distinct().Count() > 1, "keys should spread over several partitions");

        // Produce order (the i in event-i) per partition must survive the round trip, with the same keys and offsets.
        var producedByPartition = delivered
            .GroupBy(result => result.Partition.Value)
            .ToDictionary(group => group.Key, group => group.OrderBy(result => result.Message.Value, StringComparer.Ordinal).Select(Describe).ToList());
        var consumedByPartition = consumed
            .GroupBy(result => result.Partition.Value)
            .ToDictionary(group => group.Key, group => group.Select(DescribeConsumed).ToList());
        Assert.Equal(producedByPartition.Keys.Order(), consumedByPartition.Keys.Order());
        foreach (var (partition, expected) in producedByPartition)
        {
            Assert.Equal(expected, consumedByPartition[partition]);
        }

        static string Describe(DeliveryResult<string, string> result) => $"{result.Offset.Value}:{result.Message.Key}={result.Message.Value}";
        static string DescribeConsumed(ConsumeResult<string, string> result) => $"{result.Offset.Value}:{result.Message.Key}={result.Message.Value}";
    }

    [Fact]
    public async Task ProducingToAnUnknownTopic_AutoCreatesItWithTheMocksFourPartitions()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        using var producer = KafkaTestSupport.CreateProducer(cluster.BootstrapServers);

        var result = await producer.ProduceAsync("never-created", new Message<string, string> { Key = "k", Value = "v" }).WaitAsync(Timeout);

        Assert.Equal(PersistenceStatus.Persisted, result.Status);
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        var topic = Assert.Single(admin.GetMetadata(Timeout).Topics, topic => topic.Topic == "never-created");
        Assert.Equal(4, topic.Partitions.Count);
    }

    [Fact]
    public async Task AdminCreateTopics_FailsFastBecauseTheMockHasNoAdminApi()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        var stopwatch = Stopwatch.StartNew();

        var failure = await Assert.ThrowsAnyAsync<KafkaException>(
            () => admin.CreateTopicsAsync([new TopicSpecification { Name = "via-admin", NumPartitions = 2, ReplicationFactor = 1 }]).WaitAsync(Timeout));

        Assert.Contains("not supported by broker", failure.Message, StringComparison.Ordinal);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5), $"expected a fast failure, took {stopwatch.Elapsed}");
        Assert.DoesNotContain(admin.GetMetadata(Timeout).Topics, topic => topic.Topic == "via-admin");
    }

    [Fact]
    public void CreateTopic_TwiceWithDifferentSettings_KeepsTheFirstAndDoesNotThrow()
    {
        using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0, DefaultPartitions = 5 });

        cluster.CreateTopic("twice", 2, 1);
        cluster.CreateTopic("twice", 6, 1);
        cluster.CreateTopic("defaulted", 0, 1);

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        var topics = admin.GetMetadata(Timeout).Topics.ToDictionary(topic => topic.Topic, topic => topic.Partitions.Count);
        Assert.Equal(2, topics["twice"]);
        Assert.Equal(5, topics["defaulted"]);
    }

    [Fact]
    public void Dispose_ThenUse_ThrowsObjectDisposed()
    {
        var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        cluster.Dispose();
        cluster.Dispose();

        Assert.Throws<ObjectDisposedException>(() => cluster.CreateTopic("late", 1, 1));
    }
}
