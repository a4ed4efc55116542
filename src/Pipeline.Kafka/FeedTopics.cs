namespace Pipeline.Kafka;

/// <summary>The pipeline's topic names (DESIGN.md, "Topic contracts").</summary>
public static class FeedTopics
{
    /// <summary>Follow, unfollow and block events keyed by follower id.</summary>
    public const string Follows = "social.follows";

    /// <summary>Post created and deleted events keyed by author id.</summary>
    public const string Posts = "social.posts";

    /// <summary>Feed updates keyed by recipient id: one ordered stream per user.</summary>
    public const string FeedUpdates = "feed.updates";

    /// <summary>Input records the processor could not accept, with the reason in headers.</summary>
    public const string DeadLetters = "pipeline.dead-letters";
}
