using Confluent.Kafka;
using Pipeline.Kafka;
using Pipeline.Kafka.Embedded;

namespace Pipeline.IntegrationTests.Embedded;

/// <summary>
/// What the processor's stall watchdog reads to tell a stuck group from an idle one: the group's commits against
/// the partitions' ends, and whether a real record (not a transaction marker) waits past them.
/// </summary>
public sealed class GroupPositionTests
{
    private const string Topic = "positions";
    private const string Group = "positions-app";
    private static readonly TimeSpan Timeout = KafkaTestSupport.Timeout;

    [Fact]
    public async Task TransactionMarkersPastTheCommit_AreLagButNoWaitingRecord_ARealRecordIs()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        cluster.CreateTopic(Topic, 2, 1);
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        using var reader = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = "positions-reader",
            EnableAutoCommit = false,
            IsolationLevel = IsolationLevel.ReadCommitted,
        }).Build();

        // Three records in one committed transaction on partition 0: offsets 0-2, the commit marker at 3.
        using (var producer = KafkaTestSupport.CreateProducer(cluster.BootstrapServers, config => config.TransactionalId = "positions-tx"))
        {
            producer.InitTransactions(Timeout);
            producer.BeginTransaction();
            for (var i = 0; i < 3; i++)
            {
                producer.Produce(new TopicPartition(Topic, 0), new Message<string, string> { Key = "k", Value = $"v{i}" });
            }

            producer.CommitTransaction(Timeout);
        }

        // The group consumed all three and committed after the last record, as Streamiz does.
        CommitGroupOffsets(cluster.BootstrapServers, new TopicPartitionOffset(Topic, 0, 3));

        var read = TopicOffsets.ReadGroupPositions(admin, Group, [Topic], Timeout);
        Assert.True(read.CommitsRead);
        var positions = read.Partitions.OrderBy(p => p.Partition.Partition.Value).ToList();
        Assert.Equal([new GroupPosition(new TopicPartition(Topic, 0), 3, 4), new GroupPosition(new TopicPartition(Topic, 1), 0, 0)], positions);
        Assert.Equal(1, positions[0].Lag);
        Assert.False(TopicOffsets.RecordWaits(reader, positions, TimeSpan.FromSeconds(2)), "only the commit marker lies past the group's commit");

        // A record on partition 1, which the group never committed: it waits from the partition's start.
        using (var producer = KafkaTestSupport.CreateProducer(cluster.BootstrapServers))
        {
            await producer.ProduceAsync(new TopicPartition(Topic, 1), new Message<string, string> { Key = "k", Value = "new" }).WaitAsync(Timeout);
        }

        positions = [.. TopicOffsets.ReadGroupPositions(admin, Group, [Topic], Timeout).Partitions.OrderBy(p => p.Partition.Partition.Value)];
        Assert.Equal(new GroupPosition(new TopicPartition(Topic, 1), 0, 1), positions[1]);
        Assert.True(TopicOffsets.RecordWaits(reader, positions, Timeout), "a record waits on partition 1");
        Assert.Empty(reader.Assignment);
    }

    /// <summary>When the coordinator refuses the offset fetch, every partition counts from its start, and the result says so.</summary>
    [Fact]
    public async Task UnreadableCommits_CountFromThePartitionsStart()
    {
        const short OffsetFetchApiKey = 9;
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        cluster.CreateTopic(Topic, 1, 1);
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        using (var producer = KafkaTestSupport.CreateProducer(cluster.BootstrapServers))
        {
            await producer.ProduceAsync(Topic, new Message<string, string> { Key = "k", Value = "v" }).WaitAsync(Timeout);
            await producer.ProduceAsync(Topic, new Message<string, string> { Key = "k", Value = "w" }).WaitAsync(Timeout);
        }

        CommitGroupOffsets(cluster.BootstrapServers, new TopicPartitionOffset(Topic, 0, 2));
        cluster.PushRequestErrors(OffsetFetchApiKey, ErrorCode.GroupAuthorizationFailed);

        var read = TopicOffsets.ReadGroupPositions(admin, Group, [Topic], Timeout);

        Assert.False(read.CommitsRead);
        Assert.Equal(new GroupPosition(new TopicPartition(Topic, 0), 0, 2), read.Partitions.Single());
    }

    private static void CommitGroupOffsets(string bootstrapServers, TopicPartitionOffset offset)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = Group, EnableAutoCommit = false }).Build();
        consumer.Commit([offset]);
    }
}
