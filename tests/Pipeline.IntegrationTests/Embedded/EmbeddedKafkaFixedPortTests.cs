using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Pipeline.Kafka.Embedded;

namespace Pipeline.IntegrationTests.Embedded;

/// <summary>The development mode: brokers advertised at fixed loopback ports and reached through forwarders.</summary>
public sealed class EmbeddedKafkaFixedPortTests
{
    private static readonly TimeSpan Timeout = KafkaTestSupport.Timeout;

    [Fact]
    public async Task FixedPort_ClientsBootstrappedAtTheFixedAddressProduceAndConsumeThroughTheForwarders()
    {
        var (cluster, port) = StartOnFreeFixedPorts(brokerCount: 2);
        await using (cluster)
        {
            Assert.Equal($"127.0.0.1:{port},127.0.0.1:{port + 1}", cluster.BootstrapServers);
            Assert.NotEqual(cluster.BootstrapServers, cluster.MockListeners);

            const string Topic = "fixed";
            cluster.CreateTopic(Topic, 2, 1);
            var bootstrap = $"127.0.0.1:{port}";

            using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).Build())
            {
                var metadata = admin.GetMetadata(Timeout);
                Assert.Equal(
                    [$"1@127.0.0.1:{port}", $"2@127.0.0.1:{port + 1}"],
                    metadata.Brokers.OrderBy(broker => broker.BrokerId).Select(broker => $"{broker.BrokerId}@{broker.Host}:{broker.Port}"));
                var topic = Assert.Single(metadata.Topics, topic => topic.Topic == Topic);
                Assert.Equal([1, 2], topic.Partitions.Select(partition => partition.Leader).Order());
            }

            var values = Enumerable.Range(0, 20).Select(i => $"value-{i}").ToList();
            using (var producer = KafkaTestSupport.CreateProducer(bootstrap))
            {
                for (var i = 0; i < values.Count; i++)
                {
                    var result = await producer.ProduceAsync(new TopicPartition(Topic, new Partition(i % 2)), new Message<string, string> { Key = "k", Value = values[i] }).WaitAsync(Timeout);
                    Assert.Equal(PersistenceStatus.Persisted, result.Status);
                }
            }

            var consumed = await KafkaTestSupport.ConsumeAsync(bootstrap, Topic, values.Count, Timeout).WaitAsync(Timeout + Timeout);
            Assert.Equal(values.Order(StringComparer.Ordinal), consumed.Select(record => record.Message.Value).Order(StringComparer.Ordinal));
            Assert.Equal([0, 1], consumed.Select(record => record.Partition.Value).Distinct().Order());
        }

        Assert.True(KafkaTestSupport.CanBind(port) && KafkaTestSupport.CanBind(port + 1), "disposing the cluster must release the fixed ports");
    }

    [Fact]
    public async Task FixedPortAlreadyInUse_StartFailsWithAClearMessage()
    {
        var (first, port) = StartOnFreeFixedPorts(brokerCount: 1);
        await using (first)
        {
            var failure = Assert.Throws<InvalidOperationException>(() => EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = port }));
            Assert.Contains($"127.0.0.1:{port}", failure.Message, StringComparison.Ordinal);
        }
    }

    private static (EmbeddedKafkaCluster Cluster, int Port) StartOnFreeFixedPorts(int brokerCount)
    {
        // Why retry: another test's mock may grab a probed port between probing and binding it.
        for (var attempt = 1; ; attempt++)
        {
            var port = KafkaTestSupport.FindFreeConsecutivePorts(brokerCount);
            try
            {
                return (EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { BrokerCount = brokerCount, Port = port }), port);
            }
            catch (InvalidOperationException) when (attempt < 5)
            {
            }
        }
    }
}
