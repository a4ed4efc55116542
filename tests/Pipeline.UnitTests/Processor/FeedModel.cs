namespace Pipeline.UnitTests.Processor;

/// <summary>One input event of a generated scenario.</summary>
internal abstract record FeedInput
{
    public sealed record Follow(string Follower, string Author) : FeedInput;

    public sealed record Unfollow(string Follower, string Author) : FeedInput;

    public sealed record Block(string Follower, string Author) : FeedInput;

    public sealed record Post(string Author, string PostId) : FeedInput;

    public sealed record Delete(string Author, string PostId) : FeedInput;
}

/// <summary>
/// The reference model of DESIGN.md's feed semantics, written as plainly as possible: the topology's output,
/// replayed per user, must equal <see cref="Feeds"/> after the same events in the same order.
/// </summary>
internal sealed class FeedModel
{
    private readonly int _backfillSize;
    private readonly int _feedSize;
    private readonly HashSet<(string Follower, string Author)> _follows = [];
    private readonly Dictionary<string, List<string>> _recentPosts = [];
    private readonly HashSet<(string Author, string PostId)> _seenPosts = [];
    private readonly HashSet<(string Author, string PostId)> _deletedPosts = [];

    public FeedModel(int backfillSize, int feedSize)
    {
        _backfillSize = backfillSize;
        _feedSize = feedSize;
    }

    public Dictionary<string, List<(string Author, string PostId)>> Feeds { get; } = new(StringComparer.Ordinal);

    public void Apply(FeedInput input)
    {
        switch (input)
        {
            case FeedInput.Follow(var follower, var author) when _follows.Add((follower, author)):
                foreach (var postId in Recent(author).ToList())
                {
                    AddToFeed(follower, (author, postId));
                }

                break;
            case FeedInput.Unfollow(var follower, var author):
                Retract(follower, author);
                break;
            case FeedInput.Block(var follower, var author):
                Retract(follower, author);
                break;
            case FeedInput.Post(var author, var postId) when _seenPosts.Add((author, postId)) && !_deletedPosts.Contains((author, postId)):
                // The processor keeps a bounded window of each author's newest posts: a post that fell out of it
                // is not backfilled even if newer ones are deleted later.
                var recent = Recent(author);
                recent.Add(postId);
                if (recent.Count > _backfillSize)
                {
                    recent.RemoveAt(0);
                }
                foreach (var (follower, _) in _follows.Where(f => f.Author == author))
                {
                    AddToFeed(follower, (author, postId));
                }

                break;
            case FeedInput.Delete(var author, var postId) when _deletedPosts.Add((author, postId)):
                Recent(author).Remove(postId);
                foreach (var feed in Feeds.Values)
                {
                    feed.Remove((author, postId));
                }

                break;
        }
    }

    private void Retract(string follower, string author)
    {
        if (_follows.Remove((follower, author)))
        {
            Feed(follower).RemoveAll(entry => entry.Author == author);
        }
    }

    /// <summary>
    /// Applies one feed.updates change to a replayed feed, as a subscriber holding <paramref name="feedSize"/>
    /// entries would: added entries go last and push the oldest out, removals drop the entry.
    /// </summary>
    public static void Replay(List<(string Author, string PostId)> feed, bool added, (string Author, string PostId) entry, int feedSize)
    {
        if (!added)
        {
            feed.Remove(entry);
            return;
        }

        feed.Add(entry);
        if (feed.Count > feedSize)
        {
            feed.RemoveAt(0);
        }
    }

    private List<string> Recent(string author) =>
        _recentPosts.TryGetValue(author, out var posts) ? posts : _recentPosts[author] = [];

    private List<(string Author, string PostId)> Feed(string user) =>
        Feeds.TryGetValue(user, out var feed) ? feed : Feeds[user] = [];

    private void AddToFeed(string user, (string Author, string PostId) entry)
    {
        var feed = Feed(user);
        if (feed.Contains(entry))
        {
            return;
        }

        feed.Add(entry);
        if (feed.Count > _feedSize)
        {
            feed.RemoveAt(0);
        }
    }
}
