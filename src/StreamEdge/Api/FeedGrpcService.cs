using Feed.V1;
using Grpc.Core;
using Pipeline.StreamEdge.Auth;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.StreamEdge.Api;

/// <summary>Subscribe: registers the caller with the dispatch loop and copies its queue to the response stream.</summary>
public sealed class FeedGrpcService : FeedService.FeedServiceBase
{
    private static readonly WriteOptions Buffered = new(WriteFlags.BufferHint);

    private readonly SubscriberRegistry _registry;
    private readonly EdgeReadiness _readiness;
    private readonly EdgeMetrics _metrics;
    private readonly FeedAccessPolicy _access;

    public FeedGrpcService(SubscriberRegistry registry, EdgeReadiness readiness, EdgeMetrics metrics, FeedAccessPolicy access)
    {
        _access = access;
        _registry = registry;
        _readiness = readiness;
        _metrics = metrics;
    }

    public override async Task Subscribe(SubscribeRequest request, IServerStreamWriter<FeedEvent> responseStream, ServerCallContext context)
    {
        var userId = _access.ResolveFeedOwner(context, request.UserId);
        if (!_readiness.IsReady)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "the edge is still starting (feed.updates not yet assigned); retry shortly"));
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
            await CopyToStreamAsync(subscription, responseStream, stop.Token);
        }
        catch (OperationCanceledException) when (subscription.Overflowed)
        {
        }
        finally
        {
            _registry.Remove(subscription);
        }

        throw subscription.Overflowed
            ? new RpcException(new Status(StatusCode.Aborted, $"subscriber fell more than {subscription.Capacity} events behind and was cut off; resubscribe with the last cursor received"))
            : new RpcException(new Status(StatusCode.Unavailable, "the edge is shutting down; resubscribe with the last cursor received"));
    }

    /// <summary>
    /// Writes queued events, flushing only when the queue is drained: a burst goes out in few HTTP/2 frames
    /// instead of one flush per event.
    /// </summary>
    private async Task CopyToStreamAsync(Subscription subscription, IServerStreamWriter<FeedEvent> responseStream, CancellationToken cancellationToken)
    {
        var reader = subscription.Reader;
        while (await reader.WaitToReadAsync(cancellationToken))
        {
            var written = 0;
            while (reader.TryRead(out var feedEvent))
            {
                responseStream.WriteOptions = reader.Count > 0 ? Buffered : null;
                await responseStream.WriteAsync(feedEvent, cancellationToken);
                written++;
            }

            _metrics.Delivered(written);
        }
    }
}
