using Confluent.Kafka;
using Confluent.Kafka.Admin;

namespace Pipeline.Kafka;

/// <summary>Reads of where topics end, for progress checks (the processor's watchdog, tests, the fault battery).</summary>
public static class TopicOffsets
{
    /// <summary>
    /// The end offsets (high watermarks) of every partition of <paramref name="topics"/>, summed, in one batched
    /// request per broker: how many records were ever written to them, control records of transactions included.
    /// </summary>
    public static long EndOffsetSum(IAdminClient admin, IReadOnlyCollection<string> topics, TimeSpan timeout) =>
        ListOffsets(admin, Partitions(admin, topics, timeout), OffsetSpec.Latest(), timeout).Values.Sum();

    /// <summary>
    /// Where consumer group <paramref name="group"/> stands on every partition of <paramref name="topics"/>: its
    /// committed offset against the partition's end. Where the group committed nothing on a partition, or the
    /// committed offsets cannot be read (<see cref="GroupPositions.CommitsRead"/> false), the partition's start
    /// stands in, as with auto.offset.reset=earliest. Offsets past the commit may be transaction markers only; see
    /// <see cref="RecordWaits"/>.
    /// </summary>
    public static GroupPositions ReadGroupPositions(IAdminClient admin, string group, IReadOnlyCollection<string> topics, TimeSpan timeout)
    {
        var partitions = Partitions(admin, topics, timeout);
        var starts = ListOffsets(admin, partitions, OffsetSpec.Earliest(), timeout);
        var ends = ListOffsets(admin, partitions, OffsetSpec.Latest(), timeout);
        Dictionary<TopicPartition, long>? committed;
        try
        {
            committed = admin.ListConsumerGroupOffsetsAsync(
                    [new ConsumerGroupTopicPartitions(group, partitions)],
                    new ListConsumerGroupOffsetsOptions { RequestTimeout = timeout })
                .GetAwaiter().GetResult()
                .SelectMany(result => result.Partitions)
                .ToDictionary(offset => offset.TopicPartition, offset => offset.Offset.Value);
        }
        catch (KafkaException)
        {
            committed = null;
        }

        return new GroupPositions(
            [.. partitions.Select(partition => new GroupPosition(
                partition,
                committed is not null && committed.TryGetValue(partition, out var offset) && offset >= starts[partition] ? offset : starts[partition],
                ends[partition]))],
            CommitsRead: committed is not null);
    }

    /// <summary>
    /// Whether a record a read_committed consumer would deliver waits past the committed offset of any of
    /// <paramref name="positions"/>. Offsets alone cannot tell: a committed transaction ends with a control record
    /// that takes an offset, so a group that consumed everything still sits one offset short of the end. Reads at most
    /// one record, through <paramref name="consumer"/> (which must be read_committed and is left unassigned).
    /// </summary>
    public static bool RecordWaits<TKey, TValue>(IConsumer<TKey, TValue> consumer, IEnumerable<GroupPosition> positions, TimeSpan timeout)
    {
        var behind = positions.Where(position => position.Lag > 0).Select(position => new TopicPartitionOffset(position.Partition, position.Committed)).ToList();
        if (behind.Count == 0)
        {
            return false;
        }

        consumer.Assign(behind);
        try
        {
            return consumer.Consume(timeout) is not null;
        }
        finally
        {
            consumer.Unassign();
        }
    }

    private static List<TopicPartition> Partitions(IAdminClient admin, IReadOnlyCollection<string> topics, TimeSpan timeout) =>
        [.. admin.GetMetadata(timeout).Topics
            .Where(topic => topics.Contains(topic.Topic))
            .SelectMany(topic => topic.Partitions.Select(partition => new TopicPartition(topic.Topic, partition.PartitionId)))];

    private static Dictionary<TopicPartition, long> ListOffsets(IAdminClient admin, List<TopicPartition> partitions, OffsetSpec spec, TimeSpan timeout) =>
        partitions.Count == 0
            ? []
            : admin.ListOffsetsAsync(
                    partitions.Select(partition => new TopicPartitionOffsetSpec { TopicPartition = partition, OffsetSpec = spec }),
                    new ListOffsetsOptions { RequestTimeout = timeout })
                .GetAwaiter().GetResult()
                .ResultInfos
                .ToDictionary(info => info.TopicPartitionOffsetError.TopicPartition, info => info.TopicPartitionOffsetError.Offset.Value);
}

/// <summary>A consumer group's committed offset on one partition, and the partition's end.</summary>
public readonly record struct GroupPosition(TopicPartition Partition, long Committed, long End)
{
    /// <summary>Offsets past the commit: unconsumed records, or transaction markers.</summary>
    public long Lag => Math.Max(0, End - Committed);
}

/// <summary>A consumer group's positions on a set of topics.</summary>
/// <param name="CommitsRead">False when the group's committed offsets could not be read and partition starts stand in.</param>
public sealed record GroupPositions(IReadOnlyList<GroupPosition> Partitions, bool CommitsRead)
{
    public long Lag => Partitions.Sum(position => position.Lag);
}
