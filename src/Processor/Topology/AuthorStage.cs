using System.Diagnostics;
using Feed.V1;
using Pipeline.Kafka;
using Streamiz.Kafka.Net.Processors.Public;
using Streamiz.Kafka.Net.State;

namespace Pipeline.Processor.Topology;

/// <summary>
/// Author-partitioned stage: owns each author's follower index, recent posts and post ledger, and turns follows
/// and posts into commands for the recipients' feeds (keyed by recipient). Duplicates stop here: a post id seen
/// before, a follow of an existing edge or an unfollow of a missing one emit nothing.
/// </summary>
public sealed class AuthorStage : ITransformer<string, AuthorEvent, string, FeedCommand>
{
    // Store values are never 0: the stores return 0 (default) for a missing key.
    // Ledger: sequence + 1 for a live post, Deleted for a deleted one. Follower index: follow time, at least 1.
    private const long Deleted = -1;

    /// <summary>Most recipients one fan-out record carries: bounds a large author's fan-out in memory and in record size.</summary>
    public const int MaxRecipientsPerCommand = 500;

    private readonly ProcessorMetrics _metrics;
    private readonly int _backfillSize;
    private readonly int _partitions;
    private ProcessorContext<string, FeedCommand> _context = null!;
    private IKeyValueStore<string, long> _followers = null!;
    private IKeyValueStore<string, Post> _recentPosts = null!;
    private IKeyValueStore<string, long> _postLedger = null!;

    /// <summary>
    /// Streamiz builds a prototype with new() and then creates one instance per task through the constructor
    /// taking the parameters given to TransformerBuilder; the prototype never processes a record.
    /// </summary>
    public AuthorStage()
    {
        _metrics = null!;
    }

    /// <param name="partitions">The partition count of the updates-by-recipient repartition topic.</param>
    public AuthorStage(ProcessorMetrics metrics, int backfillSize, int partitions)
    {
        _metrics = metrics;
        _backfillSize = backfillSize;
        _partitions = partitions;
    }

    public void Init(ProcessorContext<string, FeedCommand> context)
    {
        _context = context;
        _followers = (IKeyValueStore<string, long>)context.GetStateStore(StoreNames.FollowerIndex);
        _recentPosts = (IKeyValueStore<string, Post>)context.GetStateStore(StoreNames.RecentPosts);
        _postLedger = (IKeyValueStore<string, long>)context.GetStateStore(StoreNames.PostLedger);
    }

    public Record<string, FeedCommand> Process(Record<string, AuthorEvent> record)
    {
        if (record.Value.Follow is { } follow)
        {
            _metrics.FollowProcessed();
            if (follow.Action == FollowAction.Follow)
            {
                ApplyFollow(follow);
            }
            else
            {
                ApplyUnfollow(follow);
            }
        }
        else if (record.Value.Post is { } post)
        {
            _metrics.PostProcessed();
            if (post.Action == PostAction.Created)
            {
                ApplyPost(post, record.TopicPartitionOffset.Offset.Value);
            }
            else
            {
                ApplyDelete(post);
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
        var edge = AuthorKeys.Member(follow.FolloweeId, follow.FollowerId);
        if (_followers.PutIfAbsent(edge, Math.Max(1, follow.OccurredAtMs)) != default)
        {
            return;
        }

        // Backfill: the author's newest posts, oldest first, so they land in the author's order.
        var backfill = new List<Post>(_backfillSize);
        using (var newest = _recentPosts.ReverseRange(AuthorKeys.Start(follow.FolloweeId), AuthorKeys.End(follow.FolloweeId)))
        {
            while (backfill.Count < _backfillSize && newest.MoveNext())
            {
                backfill.Add(newest.Current!.Value.Value);
            }
        }

        for (var i = backfill.Count - 1; i >= 0; i--)
        {
            Emit(follow.FollowerId, FeedCommandKind.Add, FeedCause.Backfill, backfill[i], follow.OccurredAtMs);
        }
    }

    private void ApplyUnfollow(FollowEvent follow)
    {
        if (_followers.Delete(AuthorKeys.Member(follow.FolloweeId, follow.FollowerId)) == default)
        {
            return;
        }

        var cause = follow.Action == FollowAction.Block ? FeedCause.Block : FeedCause.Unfollow;
        Emit(follow.FollowerId, FeedCommandKind.RetractAuthor, cause, new Post { AuthorId = follow.FolloweeId }, follow.OccurredAtMs);
    }

    /// <param name="sequence">The post's offset in social.posts: the author's post order, stable across replays.</param>
    private void ApplyPost(PostEvent post, long sequence)
    {
        // The ledger remembers every post id (deleted ones too), so a redelivered create is never fanned out twice
        // and a create that arrives after its delete stays deleted.
        if (_postLedger.PutIfAbsent(AuthorKeys.Member(post.AuthorId, post.PostId), sequence + 1) != default)
        {
            return;
        }

        var feedPost = new Post { PostId = post.PostId, AuthorId = post.AuthorId, Body = post.Body, CreatedAtMs = post.CreatedAtMs };
        _recentPosts.Put(AuthorKeys.Sequenced(post.AuthorId, sequence), feedPost);
        TrimRecentPosts(post.AuthorId);
        EmitToFollowers(post.AuthorId, FeedCommandKind.Add, FeedCause.Live, feedPost, post.OccurredAtMs);
    }

    private void ApplyDelete(PostEvent post)
    {
        var ledgerKey = AuthorKeys.Member(post.AuthorId, post.PostId);
        var ledger = _postLedger.Get(ledgerKey);
        if (ledger == Deleted)
        {
            return;
        }

        _postLedger.Put(ledgerKey, Deleted);
        if (ledger == default)
        {
            return;
        }

        _recentPosts.Delete(AuthorKeys.Sequenced(post.AuthorId, ledger - 1));
        EmitToFollowers(post.AuthorId, FeedCommandKind.RemovePost, FeedCause.PostDeleted, new Post { PostId = post.PostId, AuthorId = post.AuthorId }, post.OccurredAtMs);
    }

    private void TrimRecentPosts(string author)
    {
        var kept = 0;
        var expired = new List<string>();
        using (var newest = _recentPosts.ReverseRange(AuthorKeys.Start(author), AuthorKeys.End(author)))
        {
            while (newest.MoveNext())
            {
                if (++kept > _backfillSize)
                {
                    expired.Add(newest.Current!.Value.Key);
                }
            }
        }

        foreach (var key in expired)
        {
            _recentPosts.Delete(key);
        }
    }

    /// <summary>
    /// One command per repartition partition that holds current followers, listing them (at most
    /// <see cref="MaxRecipientsPerCommand"/> a record), streamed from a range scan of the follower index: an author's
    /// followers are never loaded into memory at once. Each record is keyed by its first recipient, whose partition
    /// is every listed recipient's partition.
    /// </summary>
    private void EmitToFollowers(string author, FeedCommandKind kind, FeedCause cause, Post post, long occurredAtMs)
    {
        var started = Stopwatch.GetTimestamp();
        var pending = new FeedCommand?[_partitions];
        using (var followers = _followers.Range(AuthorKeys.Start(author), AuthorKeys.End(author)))
        {
            while (followers.MoveNext())
            {
                var follower = AuthorKeys.MemberOf(followers.Current!.Value.Key, author);
                var partition = KeyPartitioner.Partition(follower, _partitions);
                var command = pending[partition] ??= new FeedCommand { Kind = kind, Cause = cause, Post = post, SourceOccurredAtMs = occurredAtMs };
                command.RecipientIds.Add(follower);
                if (command.RecipientIds.Count == MaxRecipientsPerCommand)
                {
                    _context.Forward(command.RecipientIds[0], command);
                    pending[partition] = null;
                }
            }
        }

        foreach (var command in pending)
        {
            if (command is not null)
            {
                _context.Forward(command.RecipientIds[0], command);
            }
        }

        _metrics.FanOutCompleted(Stopwatch.GetElapsedTime(started));
    }

    private void Emit(string recipient, FeedCommandKind kind, FeedCause cause, Post post, long occurredAtMs)
    {
        _context.Forward(recipient, new FeedCommand { RecipientId = recipient, Kind = kind, Cause = cause, Post = post, SourceOccurredAtMs = occurredAtMs });
    }
}
