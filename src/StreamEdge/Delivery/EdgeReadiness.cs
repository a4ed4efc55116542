using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// Serving only once the feed.updates consumer holds its assignment: before that, a subscriber would silently miss
/// updates, so load balancers and grpc.health.v1 clients must not send traffic yet.
/// </summary>
public sealed class EdgeReadiness : IHealthCheck
{
    private volatile bool _consumerAssigned;

    public bool IsReady => _consumerAssigned;

    public void MarkConsumerAssigned() => _consumerAssigned = true;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_consumerAssigned
            ? HealthCheckResult.Healthy("feed.updates consumer assigned")
            : HealthCheckResult.Unhealthy("waiting for the feed.updates consumer to be assigned"));
}
