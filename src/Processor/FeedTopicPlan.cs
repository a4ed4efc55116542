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

    /// <summary>
    /// The topics the processors' group consumes: the follow graph and the posts, and its own repartition topics
    /// (input the group already turned into commands may wait there).
    /// </summary>
    public IReadOnlyList<string> Consumed() => [FeedTopics.Posts, FeedTopics.Follows, .. Repartition()];

    /// <summary>
    /// The topics the processors' group writes besides its changelogs: every input record processed lands in at
    /// least one of them, so when none grows, no instance is processing.
    /// </summary>
    public IReadOnlyList<string> Written() => [FeedTopics.FeedUpdates, FeedTopics.DeadLetters, .. Repartition()];

    private string[] Repartition() =>
    [
        $"{_options.ApplicationId}-{FeedTopology.FollowsByFollowee}-repartition",
        $"{_options.ApplicationId}-{FeedTopology.UpdatesByRecipient}-repartition",
    ];

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
            .. Repartition().Select(topic => new TopicSpec(topic, partitions, replication, TimeSpan.FromDays(1), Compacted: false)),
            .. StoreNames.All.Select(store => new TopicSpec($"{appId}-{store}-changelog", partitions, replication, Retention: null, Compacted: true)),
        ];
    }
}
