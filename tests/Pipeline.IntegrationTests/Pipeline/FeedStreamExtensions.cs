using Feed.V1;
using Grpc.Core;

namespace Pipeline.IntegrationTests.Pipeline;

internal static class FeedStreamExtensions
{
    /// <summary>The next added or removed entry, skipping the snapshot end marker and heartbeats.</summary>
    public static async Task<FeedEvent> NextUpdateAsync(this IAsyncStreamReader<FeedEvent> stream, CancellationToken cancellationToken)
    {
        while (await stream.MoveNext(cancellationToken))
        {
            if (stream.Current.EventCase is FeedEvent.EventOneofCase.Added or FeedEvent.EventOneofCase.Removed)
            {
                return stream.Current;
            }
        }

        throw new InvalidOperationException("the feed stream ended before the next update");
    }

    /// <summary>Reads the call to its end: the status it ended with (OK when it ended cleanly) and how many messages came first.</summary>
    public static async Task<(StatusCode Status, int Received)> EndAsync<T>(this AsyncServerStreamingCall<T> call, CancellationToken cancellationToken)
    {
        using (call)
        {
            var received = 0;
            try
            {
                while (await call.ResponseStream.MoveNext(cancellationToken))
                {
                    received++;
                }
            }
            catch (RpcException ex)
            {
                return (ex.StatusCode, received);
            }

            return (StatusCode.OK, received);
        }
    }
}
