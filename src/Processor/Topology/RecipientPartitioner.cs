using Confluent.Kafka;
using Feed.V1;
using Pipeline.Kafka;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.Errors;
using Streamiz.Kafka.Net.Processors;

namespace Pipeline.Processor.Topology;

/// <summary>
/// Places each command in the partition its key hashes to (Kafka's default placement, so each user's feed state
/// stays in the task it has always been in), with the partition count the author stage grouped recipients by.
/// A topic with another count would put some users' commands in a task that does not hold their feeds, so that
/// fails the stream thread with a message saying what to fix.
/// </summary>
public sealed class RecipientPartitioner(int partitions) : IStreamPartitioner<string, FeedCommand>
{
    public void Initialize(IStreamConfig config)
    {
    }

    public Partition Partition(string topic, string key, FeedCommand value, Partition sourcePartition, int numPartitions)
    {
        if (numPartitions != partitions)
        {
            throw new StreamsException(
                $"{topic} has {numPartitions} partitions but Processor:TopicPartitions is {partitions}; the processor groups each post's recipients by that count. " +
                "Set Processor:TopicPartitions to the topics' partition count (every input and internal topic must have the same one).");
        }

        return new Partition(KeyPartitioner.Partition(key, partitions));
    }
}
