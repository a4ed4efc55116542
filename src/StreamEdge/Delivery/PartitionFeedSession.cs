using System.Runtime.CompilerServices;
using Feed.V1;
using Google.Protobuf.WellKnownTypes;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// What a partition-range (service) subscriber receives: for each partition with a cursor, the updates after it
/// replayed from feed.updates up to the position the replica had applied when the subscription was registered,
/// then live updates past that position. Registration comes first, so every update is in the replay or the live
/// queue (or both; the copy is skipped by offset) — no gap, no duplicate, per-partition order.
/// </summary>
public sealed class PartitionFeedSession : IStreamSession<PartitionFeedEvent>
{
    private readonly PartitionSubscription _subscription;
    private readonly FeedReplica _replica;
    private readonly PartitionReplay _replay;
    private readonly CursorCodec _cursors;
    private readonly TimeProvider _clock;
    private readonly IReadOnlyDictionary<int, long> _resumeAfter;

    /// <summary>Per partition of the range: live updates at or below it were in the replay (or are before the start).</summary>
    private long[] _skipThrough = [];

    /// <param name="resumeAfter">Offset of the newest update received, per partition; absent partitions start live from now.</param>
    public PartitionFeedSession(PartitionSubscription subscription, FeedReplica replica, PartitionReplay replay, CursorCodec cursors, TimeProvider clock, IReadOnlyDictionary<int, long> resumeAfter)
    {
        _subscription = subscription;
        _replica = replica;
        _replay = replay;
        _cursors = cursors;
        _clock = clock;
        _resumeAfter = resumeAfter;
    }

    /// <summary>What comes before the live updates: a start marker per partition without a cursor, then the replay after the cursors.</summary>
    public async IAsyncEnumerable<PartitionFeedEvent> ReadPrefixAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var range = _subscription.Range;
        var skipThrough = _skipThrough = new long[range.Last - range.First + 1];
        var replay = new Dictionary<int, (long After, long Through)>();
        var starts = new List<PartitionFeedEvent>();
        for (var partition = range.First; partition <= range.Last; partition++)
        {
            var applied = (_replica.NextOffset(partition) ?? 0) - 1;
            if (_resumeAfter.TryGetValue(partition, out var after) && after < applied)
            {
                replay[partition] = (after, applied);
                skipThrough[partition - range.First] = applied;
            }
            else if (_resumeAfter.ContainsKey(partition))
            {
                skipThrough[partition - range.First] = Math.Max(after, applied);
            }
            else
            {
                skipThrough[partition - range.First] = applied;
                starts.Add(new PartitionFeedEvent
                {
                    Cursor = _cursors.Encode(FeedCursor.At(partition, applied), FeedEvents.PartitionScope),
                    Partition = partition,
                    Start = new PartitionStart(),
                });
            }
        }

        foreach (var start in starts)
        {
            yield return start;
        }

        await foreach (var record in _replay.ReadAsync(replay, cancellationToken))
        {
            if (record.IsReset)
            {
                yield return new PartitionFeedEvent
                {
                    Cursor = _cursors.Encode(FeedCursor.At(record.Partition, record.Offset), FeedEvents.PartitionScope),
                    Partition = record.Partition,
                    Reset = new Reset { Reason = $"feed.updates no longer holds partition {record.Partition} after the cursor; replay continues from offset {record.Offset + 1}, the oldest retained" },
                };
            }
            else if (record.Update is { } update)
            {
                yield return FeedEvents.ToPartitionEvent(update, record.Partition, record.Offset, _cursors);
            }
        }
    }

    public PartitionFeedEvent? Live(Delivery<PartitionFeedEvent> delivery, int queued)
    {
        if (delivery.IsHeartbeat)
        {
            return new PartitionFeedEvent
            {
                Partition = -1,
                Heartbeat = new Heartbeat { ServerTime = Timestamp.FromDateTimeOffset(_clock.GetUtcNow()), Lag = queued },
            };
        }

        return delivery.Offset > _skipThrough[delivery.Event.Partition - _subscription.Range.First] ? delivery.Event : null;
    }
}
