using Grpc.Core;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.StreamEdge.Api;

/// <summary>
/// Refuses feed streams with <c>UNAVAILABLE</c> while the replica catches up, before authentication. After an edge
/// restart every subscriber retries at once; validating each rejected caller's JWT first cost most of the CPU the
/// catch-up needed (55,000 rejected calls during one 10,000-subscriber resume storm on 2 cores). Only the feed
/// service waits for the replica: ingest, health and reflection pass through.
/// </summary>
public sealed class NotReadyGate(RequestDelegate next, EdgeReadiness readiness)
{
    private const string Message = "the edge is still building its feed replica from feed.updates; retry shortly";

    private static readonly PathString FeedService = "/" + Feed.V1.FeedService.Descriptor.FullName;
    private static readonly string Unavailable = ((int)StatusCode.Unavailable).ToString(System.Globalization.CultureInfo.InvariantCulture);

    public Task InvokeAsync(HttpContext context)
    {
        if (readiness.IsReady || !context.Request.Path.StartsWithSegments(FeedService))
        {
            return next(context);
        }

        // A trailers-only gRPC response: the status travels in the response headers (grpc-web included).
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = context.Request.ContentType ?? "application/grpc";
        context.Response.Headers["grpc-status"] = Unavailable;
        context.Response.Headers["grpc-message"] = Message;
        return Task.CompletedTask;
    }
}
