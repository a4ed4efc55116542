using Confluent.Kafka;
using Pipeline.Kafka;
using Pipeline.Kafka.Embedded;

namespace Pipeline.IntegrationTests.Embedded;

/// <summary>
/// The author stage groups a post's recipients by <see cref="KeyPartitioner"/>; the producers place records with
/// librdkafka's murmur2_random. They must agree, or a user's commands would reach a task without the user's feed.
/// </summary>
public sealed class KeyPartitionerTests
{
    [Fact]
    public async Task KeyPartitioner_AgreesWithLibrdkafkasMurmur2Partitioner()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        const string Topic = "placement";
        const int Partitions = 7;
        cluster.CreateTopic(Topic, Partitions, 1);
        var keys = Enumerable.Range(0, 300).Select(i => i % 3 == 0 ? $"user-{i}" : i % 3 == 1 ? $"ü-{i}-{new string('x', i)}" : $"{Guid.NewGuid():N}").ToList();

        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers, Partitioner = Partitioner.Murmur2Random }).Build();
        var delivered = await Task.WhenAll(keys.Select(key => producer.ProduceAsync(Topic, new Message<string, string> { Key = key, Value = "" }))).WaitAsync(KafkaTestSupport.Timeout);

        Assert.Equal(Partitions, delivered.Select(result => result.Partition.Value).Distinct().Count()); // 300 keys reach every partition
        Assert.All(delivered, result => Assert.Equal(result.Partition.Value, KeyPartitioner.Partition(result.Message.Key, Partitions)));
    }
}
