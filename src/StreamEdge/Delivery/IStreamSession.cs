namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// What one open stream sends: first what comes before the live updates (a snapshot, a resume or a replay), then
/// what the dispatch loop queued. The stream writer reads the subscription's queue itself and reads the prefix in a
/// method of its own, so an open stream keeps no iterator alive for its whole life.
/// </summary>
public interface IStreamSession<TEvent>
    where TEvent : class
{
    /// <summary>The events before the live updates; the sequence ends when they are all read.</summary>
    public IAsyncEnumerable<TEvent> ReadPrefixAsync(CancellationToken cancellationToken);

    /// <summary>The event to send for <paramref name="delivery"/>, or null when the prefix covered it.</summary>
    /// <param name="queued">Deliveries still queued behind this one (a heartbeat reports them as the subscriber's lag).</param>
    public TEvent? Live(Delivery<TEvent> delivery, int queued);
}
