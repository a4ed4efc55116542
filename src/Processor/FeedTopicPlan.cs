using Microsoft.Extensions.Options;
using Pipeline.Kafka;
using Pipeline.Kafka.Topics;
using Pipeline.Processor.Topology;

namespace Pipeline.Processor;

/// <summary>
/// Every topic the processor reads or writes, internal ones included, with explicit settings. Input topics and
/// the repartition topic share one partition count: co-partitioning of posts and follows depends on it.
/// </summary>
public sealed class FeedTopicPlan
{
    private readonly ProcessorOptions _options;

    public FeedTopicPlan(IOptions<ProcessorOptions> options)
    {
        _options = options.Value;
    }

    public IReadOnlyList<TopicSpec> All()
    {
        var partitions = _options.TopicPartitions;
        var replication = _options.ReplicationFactor;
        var appId = _options.ApplicationId;
        return
        [
            new(FeedTopics.Follows, partitions, replication, Retention: null, Compacted: false),
            new(FeedTopics.Posts, partitions, replication, Retention: null, Compacted: false),
            new(FeedTopics.FeedUpdates, partitions, replication, _options.FeedUpdatesRetention, Compacted: false),
            new(FeedTopics.DeadLetters, partitions, replication, TimeSpan.FromDays(14), Compacted: false),
            new($"{appId}-{FeedTopology.FollowsByFollowee}-repartition", partitions, replication, TimeSpan.FromDays(1), Compacted: false),
            new($"{appId}-{FeedTopology.UpdatesByRecipient}-repartition", partitions, replication, TimeSpan.FromDays(1), Compacted: false),
            .. StoreNames.All.Select(store => new TopicSpec($"{appId}-{store}-changelog", partitions, replication, Retention: null, Compacted: true)),
        ];
    }
}
