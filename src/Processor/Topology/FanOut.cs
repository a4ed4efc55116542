using Feed.V1;
using Streamiz.Kafka.Net.Processors.Public;
using Streamiz.Kafka.Net.State;

namespace Pipeline.Processor.Topology;

/// <summary>
/// Per-author state and fan-out. Keeps the follower index (one entry per edge, keyed "{author}|{follower}", so
/// an author's followers are a contiguous key range read with an iterator, never one value in memory) and turns
/// each post into one feed update per current follower, keyed by the recipient.
/// </summary>
public sealed class FanOut : ITransformer<string, AuthorEvent, string, FeedUpdate>
{
    private readonly ProcessorMetrics _metrics;
    private ProcessorContext<string, FeedUpdate> _context = null!;
    private IKeyValueStore<string, long> _followers = null!;

    /// <summary>
    /// Streamiz builds a prototype with new() and then creates one instance per task through the constructor
    /// taking the parameters given to TransformerBuilder; the prototype never processes a record.
    /// </summary>
    public FanOut()
    {
        _metrics = null!;
    }

    public FanOut(ProcessorMetrics metrics)
    {
        _metrics = metrics;
    }

    public void Init(ProcessorContext<string, FeedUpdate> context)
    {
        _context = context;
        _followers = (IKeyValueStore<string, long>)context.GetStateStore(StoreNames.FollowerIndex);
    }

    public Record<string, FeedUpdate> Process(Record<string, AuthorEvent> record)
    {
        if (record.Value.Follow is { } follow)
        {
            _metrics.FollowProcessed();
            ApplyFollow(follow);
        }
        else if (record.Value.Post is { } post)
        {
            _metrics.PostProcessed();
            if (post.Action == PostAction.Created)
            {
                FanOutPost(post);
            }
        }

        // Everything is emitted through Forward; there is no single result record.
        return null!;
    }

    public void Close()
    {
    }

    private void ApplyFollow(FollowEvent follow)
    {
        var key = FollowerKeys.Edge(follow.FolloweeId, follow.FollowerId);
        if (follow.Action == FollowAction.Follow)
        {
            _followers.Put(key, follow.OccurredAtMs);
        }
        else
        {
            _followers.Delete(key);
        }
    }

    private void FanOutPost(PostEvent post)
    {
        var feedPost = new Post { PostId = post.PostId, AuthorId = post.AuthorId, Body = post.Body, CreatedAtMs = post.CreatedAtMs };
        var emitted = 0;
        using (var followers = _followers.Range(FollowerKeys.RangeStart(post.AuthorId), FollowerKeys.RangeEnd(post.AuthorId)))
        {
            while (followers.MoveNext())
            {
                var recipient = FollowerKeys.Follower(followers.Current!.Value.Key, post.AuthorId);
                _context.Forward(recipient, new FeedUpdate
                {
                    RecipientId = recipient,
                    Kind = FeedUpdateKind.Added,
                    Cause = FeedCause.Live,
                    Post = feedPost,
                    SourceOccurredAtMs = post.OccurredAtMs,
                });
                emitted++;
            }
        }

        _metrics.FeedUpdatesEmitted(emitted);
    }
}

/// <summary>Store names; each is also the middle of its changelog topic name.</summary>
public static class StoreNames
{
    public const string FollowerIndex = "follower-index";
}

/// <summary>
/// Composite keys "{author}|{follower}". Ids never contain '|' (FeedContract), and '}' sorts right after '|',
/// so [author + "|", author + "}") is exactly one author's followers — "bob|…" never matches "bobby|…".
/// </summary>
public static class FollowerKeys
{
    public static string Edge(string author, string follower) => string.Concat(author, "|", follower);

    public static string RangeStart(string author) => author + "|";

    public static string RangeEnd(string author) => author + "}";

    public static string Follower(string edgeKey, string author) => edgeKey[(author.Length + 1)..];
}
