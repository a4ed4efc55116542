using Confluent.Kafka;
using Feed.V1;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Pipeline.StreamEdge.Auth;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.StreamEdge.Api;

/// <summary>Subscribe and SubscribePartitions: authorize, register with the dispatch loop, and write the session's events to the stream.</summary>
public sealed class FeedGrpcService : FeedService.FeedServiceBase
{
    private static readonly WriteOptions Buffered = new(WriteFlags.BufferHint);

    private readonly SubscriberRegistry _registry;
    private readonly EdgeReadiness _readiness;
    private readonly EdgeMetrics _metrics;
    private readonly FeedAccessPolicy _access;
    private readonly FeedReplica _replica;
    private readonly CursorCodec _cursors;
    private readonly PartitionReplay _replay;
    private readonly TimeProvider _clock;
    private readonly int _maxSnapshotSize;

    public FeedGrpcService(
        SubscriberRegistry registry,
        EdgeReadiness readiness,
        EdgeMetrics metrics,
        FeedAccessPolicy access,
        FeedReplica replica,
        CursorCodec cursors,
        PartitionReplay replay,
        TimeProvider clock,
        IOptions<EdgeOptions> options)
    {
        _registry = registry;
        _readiness = readiness;
        _metrics = metrics;
        _access = access;
        _replica = replica;
        _cursors = cursors;
        _replay = replay;
        _clock = clock;
        _maxSnapshotSize = options.Value.MaxSnapshotSize;
    }

    public override Task Subscribe(SubscribeRequest request, IServerStreamWriter<FeedEvent> responseStream, ServerCallContext context)
    {
        var userId = _access.ResolveFeedOwner(context, request.UserId);
        var cursor = DecodeCursor(request.Cursor, userId);
        if (request.SnapshotSize < 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "snapshot_size must not be negative"));
        }

        var subscription = _registry.TryAdd(userId, out var refusal) ?? throw Refused(refusal!);
        var session = new FeedSession(userId, _replica, _cursors, _clock, cursor, Math.Min(request.SnapshotSize, _maxSnapshotSize));
        return StreamAsync(subscription, session, responseStream, context, subscription, static (registry, registered) => registry.Remove(registered));
    }

    public override Task SubscribePartitions(SubscribePartitionsRequest request, IServerStreamWriter<PartitionFeedEvent> responseStream, ServerCallContext context)
    {
        _access.RequireService(context);
        var range = new PartitionRange(request.FirstPartition, request.LastPartition);
        var partitions = _readiness.PartitionCount;
        if (range.First < 0 || range.First > range.Last || range.Last >= partitions)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"the partition range must satisfy 0 <= first_partition <= last_partition < {partitions} (the partitions of feed.updates); got {range.First}-{range.Last}"));
        }

        var resumeAfter = new Dictionary<int, long>();
        foreach (var text in request.Cursors)
        {
            var cursor = DecodeCursor(text, FeedEvents.PartitionScope) ?? throw new RpcException(new Status(StatusCode.InvalidArgument, "cursors must not be empty strings"));
            if (cursor.Kind != CursorKind.Position || !range.Contains(cursor.Partition) || !resumeAfter.TryAdd(cursor.Partition, cursor.Offset))
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"each cursor must be the newest received for a distinct partition of {range}; got one for partition {cursor.Partition}"));
            }
        }

        var subscription = _registry.TryAdd(range, out var refusal) ?? throw Refused(refusal!);
        var session = new PartitionFeedSession(subscription, _replica, _replay, _cursors, _clock, resumeAfter);
        return StreamAsync(subscription.Subscription, session, responseStream, context, subscription, static (registry, registered) => registry.Remove(registered));
    }

    /// <summary>
    /// Writes a session's events until the client leaves, the subscriber overflows (ABORTED) or the edge shuts
    /// down (UNAVAILABLE); the client resumes from its cursor after either status. The prefix is written by a
    /// method of its own and the live queue is read here, so that no iterator stays alive for the stream's life.
    /// The subscription is unregistered here too, so the service method need not stay an async frame around this
    /// one for the stream's life (136 bytes per subscriber): <paramref name="unregister"/> is a static lambda.
    /// </summary>
    private async Task StreamAsync<TEvent, TRegistration>(Subscription<TEvent> subscription, IStreamSession<TEvent> session, IServerStreamWriter<TEvent> responseStream, ServerCallContext context, TRegistration registration, Action<SubscriberRegistry, TRegistration> unregister)
        where TEvent : class
    {
        try
        {
            using var aborted = subscription.CancelWith(context.CancellationToken);
            var token = subscription.Token;
            var queue = subscription.Queue;

            // The bearer token was validated before the handler ran and is not read again; the request headers live
            // as long as the stream, so its text (several hundred bytes per subscriber) is let go.
            context.GetHttpContext().Request.Headers.Authorization = StringValues.Empty;
            try
            {
                // Headers go out as soon as the subscription is registered: a client that awaits them knows that
                // every update committed from now on will reach it.
                await context.WriteResponseHeadersAsync([]);
                await WritePrefixAsync(subscription, session, responseStream);
                while (!subscription.Overflowed && await queue.WaitToReadAsync(token))
                {
                    // Cut off: what is still queued is not sent (the client resumes from its cursor); the status follows.
                    while (!subscription.Overflowed && queue.TryRead(out var delivery))
                    {
                        if (session.Live(delivery, queue.Count) is { } feedEvent)
                        {
                            // Only the timestamp outlives the write: a delivery held across the await would keep
                            // its event referenced from this long-lived frame until the stream's next update.
                            var dispatched = delivery.Dispatched;
                            await WriteAsync(responseStream, feedEvent, queue.Count, token);
                            _metrics.Delivered(1);
                            _metrics.Written(dispatched);
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (subscription.Overflowed)
            {
            }
            catch (FeedUnavailableException ex)
            {
                throw new RpcException(new Status(StatusCode.Unavailable, ex.Message));
            }
            catch (ObjectDisposedException)
            {
                // The replica closed under this stream: the edge is shutting down.
                throw new RpcException(new Status(StatusCode.Unavailable, "the edge is shutting down; resubscribe with the last cursor received"));
            }
            catch (KafkaException ex)
            {
                throw new RpcException(new Status(StatusCode.Unavailable, $"could not replay feed.updates from Kafka ({ex.Error.Reason}); resubscribe with the last cursors received"));
            }

            throw subscription.Overflowed
                ? new RpcException(new Status(StatusCode.Aborted, $"subscriber fell more than {subscription.Capacity} events behind and was cut off; resubscribe with the last cursor received"))
                : new RpcException(new Status(StatusCode.Unavailable, "the edge is shutting down; resubscribe with the last cursor received"));
        }
        finally
        {
            unregister(_registry, registration);
        }
    }

    /// <summary>Writes what comes before the live updates; its iterator is garbage once this returns.</summary>
    private async Task WritePrefixAsync<TEvent>(Subscription<TEvent> subscription, IStreamSession<TEvent> session, IServerStreamWriter<TEvent> responseStream)
        where TEvent : class
    {
        await foreach (var feedEvent in session.ReadPrefixAsync(subscription.Token))
        {
            // Cut off: what is still to come is not sent (the client resumes from its cursor); the status follows.
            if (subscription.Overflowed)
            {
                return;
            }

            await WriteAsync(responseStream, feedEvent, subscription.Queue.Count, subscription.Token);
            _metrics.Delivered(1);
        }
    }

    /// <summary>Flushes only when nothing more is queued: a burst goes out in few HTTP/2 frames.</summary>
    private static Task WriteAsync<TEvent>(IServerStreamWriter<TEvent> responseStream, TEvent feedEvent, int queued, CancellationToken cancellationToken)
        where TEvent : class
    {
        responseStream.WriteOptions = queued > 0 ? Buffered : null;
        return responseStream.WriteAsync(feedEvent, cancellationToken);
    }

    /// <summary>UNAVAILABLE during shutdown (resume at once, elsewhere); RESOURCE_EXHAUSTED at a limit, which is counted.</summary>
    private RpcException Refused(SubscriptionRefusal refusal)
    {
        if (refusal.ShuttingDown)
        {
            return new RpcException(new Status(StatusCode.Unavailable, refusal.Reason));
        }

        _metrics.SubscriptionRefused();
        return new RpcException(new Status(StatusCode.ResourceExhausted, refusal.Reason));
    }

    private FeedCursor? DecodeCursor(string text, string userId)
    {
        if (text.Length == 0)
        {
            return null;
        }

        return _cursors.TryDecode(text, userId, out var cursor) switch
        {
            CursorVerdict.Valid => cursor,
            CursorVerdict.OtherUser => throw new RpcException(new Status(StatusCode.PermissionDenied, "the cursor belongs to another user's feed")),
            _ => throw new RpcException(new Status(StatusCode.InvalidArgument, "the cursor is malformed or was not issued by this service; subscribe without a cursor to start from a snapshot")),
        };
    }
}
