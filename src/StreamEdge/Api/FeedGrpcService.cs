using Feed.V1;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Pipeline.StreamEdge.Auth;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.StreamEdge.Api;

/// <summary>Subscribe: authorizes, registers with the dispatch loop, and writes the session's events to the stream.</summary>
public sealed class FeedGrpcService : FeedService.FeedServiceBase
{
    private static readonly WriteOptions Buffered = new(WriteFlags.BufferHint);

    private readonly SubscriberRegistry _registry;
    private readonly EdgeReadiness _readiness;
    private readonly EdgeMetrics _metrics;
    private readonly FeedAccessPolicy _access;
    private readonly FeedReplica _replica;
    private readonly CursorCodec _cursors;
    private readonly TimeProvider _clock;
    private readonly int _maxSnapshotSize;

    public FeedGrpcService(
        SubscriberRegistry registry,
        EdgeReadiness readiness,
        EdgeMetrics metrics,
        FeedAccessPolicy access,
        FeedReplica replica,
        CursorCodec cursors,
        TimeProvider clock,
        IOptions<EdgeOptions> options)
    {
        _registry = registry;
        _readiness = readiness;
        _metrics = metrics;
        _access = access;
        _replica = replica;
        _cursors = cursors;
        _clock = clock;
        _maxSnapshotSize = options.Value.MaxSnapshotSize;
    }

    public override async Task Subscribe(SubscribeRequest request, IServerStreamWriter<FeedEvent> responseStream, ServerCallContext context)
    {
        var userId = _access.ResolveFeedOwner(context, request.UserId);
        var cursor = DecodeCursor(request.Cursor, userId);
        if (request.SnapshotSize < 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "snapshot_size must not be negative"));
        }

        if (!_readiness.IsReady)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "the edge is still building its feed replica from feed.updates; retry shortly"));
        }

        var subscription = _registry.TryAdd(userId);
        if (subscription is null)
        {
            _metrics.SubscriptionRefused();
            throw new RpcException(new Status(StatusCode.ResourceExhausted, "this user already holds the maximum number of concurrent subscriptions; close one before opening another"));
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, subscription.OverflowToken);
        try
        {
            // Headers go out as soon as the subscription is registered: a client that awaits them knows that
            // every update committed from now on will reach it.
            await context.WriteResponseHeadersAsync([]);
            var session = new FeedSession(userId, subscription, _replica, _cursors, _clock);
            await foreach (var feedEvent in session.ReadAsync(cursor, Math.Min(request.SnapshotSize, _maxSnapshotSize), stop.Token))
            {
                // Flush only when nothing more is queued: a burst goes out in few HTTP/2 frames.
                responseStream.WriteOptions = session.MoreQueued ? Buffered : null;
                await responseStream.WriteAsync(feedEvent, stop.Token);
                _metrics.Delivered(1);
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
        finally
        {
            _registry.Remove(subscription);
        }

        throw subscription.Overflowed
            ? new RpcException(new Status(StatusCode.Aborted, $"subscriber fell more than {subscription.Capacity} events behind and was cut off; resubscribe with the last cursor received"))
            : new RpcException(new Status(StatusCode.Unavailable, "the edge is shutting down; resubscribe with the last cursor received"));
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
