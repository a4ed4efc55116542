using Grpc.Core;
using Microsoft.Extensions.Options;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.StreamEdge.Api;

/// <summary>
/// Holds authenticated and authorized feed streams while the replica catches up, and lets them through the moment
/// the edge is ready; after <see cref="EdgeOptions.NotReadyHoldTime"/> (or at shutdown) it refuses them with
/// <c>UNAVAILABLE</c>. After an edge restart every subscriber reconnects at once: refused at once, they retried
/// tens of thousands of times during one 10,000-subscriber resume storm on 2 cores, taking the CPU the catch-up
/// needed. The gate sits after authentication so that checking the callers' tokens overlaps the catch-up instead of
/// following it, and so that a caller without a valid token is refused at once instead of holding a stream. Only the
/// feed service waits for the replica: ingest, health and reflection pass through.
/// </summary>
public sealed class NotReadyGate(RequestDelegate next, EdgeReadiness readiness, IOptions<EdgeOptions> options, IHostApplicationLifetime lifetime)
{
    private const string Message = "the edge is still building its feed replica from feed.updates; retry shortly";

    private static readonly PathString FeedService = "/" + Feed.V1.FeedService.Descriptor.FullName;
    private static readonly string Unavailable = ((int)StatusCode.Unavailable).ToString(System.Globalization.CultureInfo.InvariantCulture);

    private readonly TimeSpan _holdTime = options.Value.NotReadyHoldTime;

    public Task InvokeAsync(HttpContext context) =>
        readiness.IsReady || !context.Request.Path.StartsWithSegments(FeedService) ? next(context) : HoldAsync(context);

    private async Task HoldAsync(HttpContext context)
    {
        bool ready;
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping))
        {
            try
            {
                ready = await readiness.WaitUntilReadyAsync(_holdTime, stop.Token);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                if (context.RequestAborted.IsCancellationRequested)
                {
                    // The client left while held.
                    return;
                }

                // Shutting down.
                ready = false;
            }
        }

        if (ready)
        {
            await next(context);
            return;
        }

        // A trailers-only gRPC response: the status travels in the response headers (grpc-web included).
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = context.Request.ContentType ?? "application/grpc";
        context.Response.Headers["grpc-status"] = Unavailable;
        context.Response.Headers["grpc-message"] = Message;
    }
}
