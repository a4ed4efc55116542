using Confluent.Kafka;

namespace Pipeline.Kafka;

/// <summary>Reads of where topics end, for progress checks (the processor's watchdog, tests, the fault battery).</summary>
public static class TopicOffsets
{
    /// <summary>
    /// The end offsets (high watermarks) of every partition of <paramref name="topics"/>, summed: how many records
    /// were ever written to them, control records of transactions included.
    /// </summary>
    public static long EndOffsetSum<TKey, TValue>(IAdminClient admin, IConsumer<TKey, TValue> consumer, IReadOnlyCollection<string> topics, TimeSpan timeout) =>
        admin.GetMetadata(timeout).Topics
            .Where(topic => topics.Contains(topic.Topic))
            .SelectMany(topic => topic.Partitions.Select(partition => new TopicPartition(topic.Topic, partition.PartitionId)))
            .Sum(partition => consumer.QueryWatermarkOffsets(partition, timeout).High.Value);
}
