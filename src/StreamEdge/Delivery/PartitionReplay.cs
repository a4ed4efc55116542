using System.Runtime.CompilerServices;
using Confluent.Kafka;
using Feed.V1;
using Microsoft.Extensions.Options;
using Pipeline.Kafka;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>One record replayed from feed.updates, or (with <see cref="Update"/> null and <see cref="IsReset"/>) a retention gap.</summary>
public readonly record struct ReplayedRecord(int Partition, long Offset, FeedUpdate? Update, bool IsReset);

/// <summary>
/// Reads ranges of feed.updates partitions straight from Kafka, for partition subscriptions resuming from their
/// cursors: the topic itself is the log, so a service can resume as far back as the topic retains. Each replay
/// uses its own short-lived consumer (no group membership, no commits), polled off the request threads.
/// </summary>
public sealed class PartitionReplay
{
    private const int BatchSize = 512;
    private static readonly TimeSpan PollWait = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MetadataTimeout = TimeSpan.FromSeconds(10);

    private readonly ClientConfig _clientConfig;
    private readonly string _groupId;

    public PartitionReplay(IOptions<ClientConfig> clientConfig, IOptions<EdgeOptions> options)
    {
        _clientConfig = clientConfig.Value;
        _groupId = options.Value.ConsumerGroupId + "-replay";
    }

    /// <summary>
    /// Every record of each partition after <c>After</c> up to and including <c>Through</c>, in offset order per
    /// partition. When the topic no longer holds the record right after <c>After</c>, a reset item (at the offset
    /// before the oldest retained record) comes first and the replay starts at the oldest retained record.
    /// </summary>
    public async IAsyncEnumerable<ReplayedRecord> ReadAsync(IReadOnlyDictionary<int, (long After, long Through)> ranges, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (ranges.Count == 0)
        {
            yield break;
        }

        var config = new ConsumerConfig(_clientConfig.Copy())
        {
            GroupId = _groupId,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnablePartitionEof = true,
            ClientId = $"stream-edge-replay-{Environment.MachineName}",
        };
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(config).SetValueDeserializer(Deserializers.ByteArray).Build();
        try
        {
            var through = new Dictionary<int, long>();
            var assignment = new List<TopicPartitionOffset>();
            foreach (var (partition, (after, last)) in ranges)
            {
                var topicPartition = new TopicPartition(FeedTopics.FeedUpdates, partition);
                var oldest = (await Task.Run(() => consumer.QueryWatermarkOffsets(topicPartition, MetadataTimeout), cancellationToken)).Low.Value;
                var start = after + 1;
                if (start < oldest)
                {
                    yield return new ReplayedRecord(partition, oldest - 1, null, IsReset: true);
                    start = oldest;
                }

                if (start <= last)
                {
                    through[partition] = last;
                    assignment.Add(new TopicPartitionOffset(topicPartition, start));
                }
            }

            if (assignment.Count == 0)
            {
                yield break;
            }

            consumer.Assign(assignment);
            var batch = new List<ConsumeResult<Ignore, byte[]>>(BatchSize);
            while (through.Count > 0)
            {
                batch.Clear();
                await Task.Run(() => Poll(consumer, batch, cancellationToken), cancellationToken);
                foreach (var result in batch)
                {
                    var partition = result.Partition.Value;
                    if (!through.TryGetValue(partition, out var last))
                    {
                        continue;
                    }

                    if (result.IsPartitionEOF || result.Offset.Value > last)
                    {
                        through.Remove(partition);
                        continue;
                    }

                    if (result.Offset.Value == last)
                    {
                        through.Remove(partition);
                    }

                    // A record the live consumer drops as malformed is replayed as nothing, too.
                    yield return new ReplayedRecord(partition, result.Offset.Value, FeedEvents.TryParse(result.Message.Value, out var update, out _) ? update : null, IsReset: false);
                }
            }
        }
        finally
        {
            consumer.Close();
        }
    }

    /// <summary>A batch of whatever is already fetched, waiting at most one poll interval for the first record.</summary>
    private static void Poll(IConsumer<Ignore, byte[]> consumer, List<ConsumeResult<Ignore, byte[]>> batch, CancellationToken cancellationToken)
    {
        var wait = PollWait;
        while (batch.Count < BatchSize && !cancellationToken.IsCancellationRequested && consumer.Consume(wait) is { } result)
        {
            batch.Add(result);
            wait = TimeSpan.Zero;
        }
    }
}
