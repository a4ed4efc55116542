using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// Serving only once the feed replica has caught up with feed.updates as it stood at start: before that, snapshots
/// would be stale and cursors from other instances unresolvable, so load balancers and grpc.health.v1 clients must
/// not send traffic yet.
/// </summary>
public sealed class EdgeReadiness : IHealthCheck
{
    private readonly TaskCompletionSource _caughtUp = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile int _partitionCount;
    private volatile string? _waitingFor;

    public bool IsReady => _caughtUp.Task.IsCompleted;

    /// <summary>Partitions of feed.updates the replica consumes (0 until assigned).</summary>
    public int PartitionCount => _partitionCount;

    /// <summary>The replica cannot start consuming yet, and why (Kafka unreachable, the topic missing); the health check says so.</summary>
    public void MarkWaiting(string reason) => _waitingFor = reason;

    public void MarkAssigned(int partitionCount)
    {
        _partitionCount = partitionCount;
        _waitingFor = null;
    }

    public void MarkCaughtUp() => _caughtUp.TrySetResult();

    /// <summary>True once ready, false if <paramref name="limit"/> passes first; throws when cancelled.</summary>
    public async Task<bool> WaitUntilReadyAsync(TimeSpan limit, CancellationToken cancellationToken)
    {
        if (IsReady)
        {
            return true;
        }

        try
        {
            await _caughtUp.Task.WaitAsync(limit, cancellationToken);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(IsReady
            ? HealthCheckResult.Healthy("feed replica caught up with feed.updates")
            : HealthCheckResult.Unhealthy(_waitingFor is { } reason ? $"waiting to read feed.updates: {reason}" : "rebuilding the feed replica from feed.updates"));
}
