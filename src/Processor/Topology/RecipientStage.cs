using Feed.V1;
using Streamiz.Kafka.Net.Processors.Public;
using Streamiz.Kafka.Net.State;

namespace Pipeline.Processor.Topology;

/// <summary>
/// Recipient-partitioned stage: owns each user's stored feed (the newest N entries) and applies the author
/// stage's commands to it, emitting to feed.updates exactly the changes the feed went through. An add of a post
/// already held, or a removal of one not held, changes nothing and emits nothing; so feed.updates replayed for a
/// user always rebuilds that user's stored feed.
/// </summary>
public sealed class RecipientStage : ITransformer<string, FeedCommand, string, FeedUpdate>
{
    private readonly ProcessorMetrics _metrics;
    private readonly int _feedSize;
    private readonly string _positionsStore;
    private ProcessorContext<string, FeedUpdate> _context = null!;
    private IKeyValueStore<string, Post> _entries = null!;
    private IKeyValueStore<string, long> _index = null!;
    private IKeyValueStore<string, FeedHead> _heads = null!;
    private SourcePositions _positions = null!;
    private bool _open;

    /// <summary>Prototype for Streamiz (see <see cref="AuthorStage()"/>); never processes a record.</summary>
    public RecipientStage()
    {
        _metrics = null!;
        _positionsStore = "";
    }

    public RecipientStage(ProcessorMetrics metrics, int feedSize, string positionsStore)
    {
        _metrics = metrics;
        _feedSize = feedSize;
        _positionsStore = positionsStore;
    }

    public void Init(ProcessorContext<string, FeedUpdate> context)
    {
        _context = context;
        _entries = (IKeyValueStore<string, Post>)context.GetStateStore(StoreNames.FeedEntries);
        _index = (IKeyValueStore<string, long>)context.GetStateStore(StoreNames.FeedIndex);
        _heads = (IKeyValueStore<string, FeedHead>)context.GetStateStore(StoreNames.FeedHeads);
        _positions = SourcePositions.For(context, _positionsStore, _metrics);
        TaskHeartbeat.Start(context, _metrics, ref _open);
    }

    public Record<string, FeedUpdate> Process(Record<string, FeedCommand> record)
    {
        // A command applied already (its removal may have happened since) must not be applied again.
        if (!_positions.Admit(record.TopicPartitionOffset))
        {
            return null!;
        }

        var command = record.Value;
        if (command.RecipientIds.Count == 0)
        {
            Apply(command.RecipientId, command);
        }
        else
        {
            foreach (var user in command.RecipientIds)
            {
                Apply(user, command);
            }
        }

        return null!;
    }

    private void Apply(string user, FeedCommand command)
    {
        switch (command.Kind)
        {
            case FeedCommandKind.Add:
                Add(user, command);
                break;
            case FeedCommandKind.RemovePost:
                Remove(user, command.Post.AuthorId, command.Post.PostId, command);
                break;
            case FeedCommandKind.RetractAuthor:
                RetractAuthor(user, command);
                break;
        }
    }

    public void Close() => TaskHeartbeat.Stop(_metrics, ref _open);

    private void Add(string user, FeedCommand command)
    {
        // Index values are sequence + 1: the store answers 0 for a missing key. PutIfAbsent answers the held
        // entry's value when the post is in the feed already, and then writes nothing.
        var head = _heads.Get(user);
        if (_index.PutIfAbsent(RecipientKeys.Held(user, command.Post.AuthorId, command.Post.PostId), head.Next + 1) != default)
        {
            return;
        }

        _entries.Put(RecipientKeys.Entry(user, head.Next), command.Post);
        head = head.Appended();
        if (head.Size > _feedSize)
        {
            head = DropOldest(user, head);
        }

        _heads.Put(user, head);
        Emit(user, FeedUpdateKind.Added, command.Cause, command.Post, command.SourceOccurredAtMs);
    }

    private void Remove(string user, string author, string postId, FeedCommand command)
    {
        var held = _index.Delete(RecipientKeys.Held(user, author, postId));
        if (held == default)
        {
            return;
        }

        var sequence = held - 1;
        var entry = _entries.Delete(RecipientKeys.Entry(user, sequence));
        _heads.Put(user, _heads.Get(user).Removed(sequence));
        Emit(user, FeedUpdateKind.Removed, command.Cause, entry ?? new Post { PostId = postId, AuthorId = author }, command.SourceOccurredAtMs);
    }

    /// <summary>Removes every entry of one author from the user's feed (unfollow, block), oldest first.</summary>
    private void RetractAuthor(string user, FeedCommand command)
    {
        var author = command.Post.AuthorId;
        var held = new List<(string PostId, long Sequence)>();
        using (var posts = _index.Range(RecipientKeys.HeldStart(user, author), RecipientKeys.HeldEnd(user, author)))
        {
            while (posts.MoveNext())
            {
                var (key, sequence) = (posts.Current!.Value.Key, posts.Current!.Value.Value);
                held.Add((RecipientKeys.HeldPostId(key, user, author), sequence));
            }
        }

        foreach (var (postId, _) in held.OrderBy(h => h.Sequence))
        {
            Remove(user, author, postId, command);
        }
    }

    /// <summary>
    /// The cap is silent: an entry pushed out by newer ones is no longer served, and clients that keep their
    /// own bounded list drop it the same way. The oldest entry is the first at or above the head's floor: the one at
    /// the floor, found with a get, unless a removal left a hole there; then the first after it, found with a range
    /// seek (an iterator over every level of the store, which a get at the floor spares every other add at the cap).
    /// </summary>
    private FeedHead DropOldest(string user, FeedHead head)
    {
        var oldestKey = RecipientKeys.Entry(user, head.Floor);
        var oldest = _entries.Get(oldestKey);
        if (oldest is null)
        {
            using var entries = _entries.Range(oldestKey, RecipientKeys.EntryEnd(user));
            if (entries.MoveNext())
            {
                (oldestKey, oldest) = (entries.Current!.Value.Key, entries.Current!.Value.Value);
            }
        }

        if (oldest is null)
        {
            throw new InvalidOperationException($"The feed of {user} counts {head.Size} entries but holds none from sequence {head.Floor}: its stores disagree.");
        }

        _entries.Delete(oldestKey);
        _index.Delete(RecipientKeys.Held(user, oldest.AuthorId, oldest.PostId));
        return head.DroppedOldest(RecipientKeys.EntrySequence(oldestKey, user));
    }

    private void Emit(string user, FeedUpdateKind kind, FeedCause cause, Post post, long occurredAtMs)
    {
        _context.Forward(user, new FeedUpdate { RecipientId = user, Kind = kind, Cause = cause, Post = post, SourceOccurredAtMs = occurredAtMs });
        _metrics.FeedUpdatesEmitted(1);
    }
}
