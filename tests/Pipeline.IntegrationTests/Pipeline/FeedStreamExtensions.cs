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
}
