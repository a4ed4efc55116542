using System.Runtime.CompilerServices;
using Feed.V1;
using Google.Protobuf.WellKnownTypes;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// What one subscriber receives, in order: an optional replay (after a cursor) or snapshot, then live updates,
/// with heartbeats throughout. The subscription is registered before the replica is read, so every update is
/// either in what was read or in the live queue (or both: the copy is skipped by offset) — no gap, no duplicate.
/// </summary>
public sealed class FeedSession : IStreamSession<FeedEvent>
{
    private static readonly TimeSpan CatchUpWait = TimeSpan.FromSeconds(5);

    private readonly string _userId;
    private readonly FeedReplica _replica;
    private readonly CursorCodec _cursors;
    private readonly TimeProvider _clock;
    private readonly FeedCursor? _cursor;
    private readonly int _snapshotSize;

    /// <summary>
    /// The newest position sent (Kind 0 until the prefix has set one), which heartbeats carry as their cursor. Kept as
    /// a value and signed when a heartbeat goes out: holding the last update's cursor string kept a young object
    /// referenced from every recently written stream, so each gen0 collection rescanned those streams' cards and
    /// promoted the strings.
    /// </summary>
    private FeedCursor _last;

    /// <summary>Live updates at or below this offset were in what was sent before them.</summary>
    private long _skipThrough = -1;

    /// <param name="cursor">Resume right after it; null to start from a snapshot of <paramref name="snapshotSize"/> entries.</param>
    public FeedSession(string userId, FeedReplica replica, CursorCodec cursors, TimeProvider clock, FeedCursor? cursor, int snapshotSize)
    {
        _userId = userId;
        _replica = replica;
        _cursors = cursors;
        _clock = clock;
        _cursor = cursor;
        _snapshotSize = snapshotSize;
    }

    /// <summary>What comes before the live updates: the replay after the cursor, or a snapshot.</summary>
    public async IAsyncEnumerable<FeedEvent> ReadPrefixAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        long skipThrough;
        if (_cursor is { Kind: CursorKind.Position } position)
        {
            var resume = await ResumeAsync(position, cancellationToken);
            if (resume.ResetReason is null)
            {
                skipThrough = position.Offset;
                foreach (var (feedEvent, offset) in resume.Updates)
                {
                    feedEvent.Cursor = Remember(FeedCursor.At(resume.Partition, offset));
                    skipThrough = offset;
                    yield return feedEvent;
                }
            }
            else
            {
                yield return new FeedEvent { Cursor = _cursors.Encode(FeedCursor.InSnapshot, _userId), Reset = new Reset { Reason = resume.ResetReason } };
                skipThrough = -1;
                await foreach (var feedEvent in SnapshotAsync(_snapshotSize, cancellationToken))
                {
                    skipThrough = feedEvent.Offset;
                    yield return feedEvent.Event;
                }
            }
        }
        else
        {
            if (_cursor is { Kind: CursorKind.InSnapshot })
            {
                yield return new FeedEvent { Cursor = _cursors.Encode(FeedCursor.InSnapshot, _userId), Reset = new Reset { Reason = "the stream ended during a snapshot; a fresh snapshot follows" } };
            }

            skipThrough = -1;
            await foreach (var feedEvent in SnapshotAsync(_snapshotSize, cancellationToken))
            {
                skipThrough = feedEvent.Offset;
                yield return feedEvent.Event;
            }
        }

        _skipThrough = skipThrough;
    }

    public FeedEvent? Live(Delivery<FeedEvent> delivery, int queued)
    {
        if (delivery.IsHeartbeat)
        {
            return new FeedEvent
            {
                Cursor = _last.Kind == 0 ? "" : _cursors.Encode(_last, _userId),
                Heartbeat = new Heartbeat { ServerTime = Timestamp.FromDateTimeOffset(_clock.GetUtcNow()), Lag = queued },
            };
        }

        if (delivery.Offset <= _skipThrough)
        {
            return null;
        }

        _last = FeedCursor.At(delivery.Partition, delivery.Offset);
        return delivery.Event;
    }

    /// <summary>Snapshot entries (their cursor restarts the snapshot), then the end marker carrying the live position.</summary>
    private async IAsyncEnumerable<(FeedEvent Event, long Offset)> SnapshotAsync(int size, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        cancellationToken.ThrowIfCancellationRequested();
        var snapshot = _replica.ReadSnapshot(_userId, size);
        var inSnapshot = _cursors.Encode(FeedCursor.InSnapshot, _userId);
        foreach (var entry in snapshot.Entries)
        {
            yield return (new FeedEvent { Cursor = inSnapshot, Added = entry }, snapshot.Position.Offset);
        }

        yield return (new FeedEvent { Cursor = Remember(snapshot.Position), SnapshotEnd = new SnapshotEnd() }, snapshot.Position.Offset);
    }

    /// <summary>Reads the replay, waiting briefly when the cursor came from an edge instance that is further ahead.</summary>
    private async Task<ReplicaResume> ResumeAsync(FeedCursor cursor, CancellationToken cancellationToken)
    {
        var deadline = _clock.GetUtcNow() + CatchUpWait;
        while (true)
        {
            var resume = _replica.ReadAfter(_userId, cursor);
            if (!resume.IsBehind)
            {
                if (resume.ResetReason is null)
                {
                    _last = cursor;
                }

                return resume;
            }

            if (_clock.GetUtcNow() > deadline)
            {
                throw new FeedUnavailableException("this edge has not yet caught up with the cursor's position; retry shortly (or on another instance)");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    private string Remember(FeedCursor cursor)
    {
        _last = cursor;
        return _cursors.Encode(cursor, _userId);
    }
}

/// <summary>The edge cannot serve the request right now; the client should retry.</summary>
public sealed class FeedUnavailableException(string message) : Exception(message);
