using System.ComponentModel.DataAnnotations;
using Pipeline.Kafka.Contracts;

namespace Pipeline.StreamEdge;

/// <summary>The "Edge" configuration section.</summary>
public sealed class EdgeOptions
{
    public const string SectionName = "Edge";

    /// <summary>
    /// Events buffered per subscriber. A subscriber that falls this far behind is ended with ABORTED and resumes
    /// from its last cursor, so one slow reader never holds memory or the dispatch loop hostage.
    /// </summary>
    [Range(16, 1_000_000)]
    public int SubscriberBufferSize { get; set; } = 1024;

    /// <summary>Concurrent subscriptions one user may hold (devices, tabs); beyond it RESOURCE_EXHAUSTED.</summary>
    [Range(1, 1000)]
    public int MaxSubscriptionsPerUser { get; set; } = 10;

    /// <summary>Largest post body ingest accepts, in UTF-8 bytes.</summary>
    [Range(1, 1 << 20)]
    public int MaxPostBodyBytes { get; set; } = FeedContract.DefaultMaxPostBodyBytes;

    /// <summary>Consumer group of the edge's feed.updates consumer (used for client metrics, not for offsets).</summary>
    [Required]
    public string ConsumerGroupId { get; set; } = "stream-edge";
}
