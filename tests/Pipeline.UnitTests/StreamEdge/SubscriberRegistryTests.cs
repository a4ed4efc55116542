using Microsoft.Extensions.DependencyInjection;
using Pipeline.StreamEdge;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.UnitTests.StreamEdge;

public sealed class SubscriberRegistryTests : IDisposable
{
    private readonly ServiceProvider _services;
    private readonly SubscriberRegistry _registry;

    public SubscriberRegistryTests()
    {
        _services = new ServiceCollection()
            .AddMetrics()
            .AddSingleton<EdgeMetrics>()
            .AddSingleton<SubscriberRegistry>()
            .Configure<EdgeOptions>(options =>
            {
                options.MaxSubscriptionsPerUser = 2;
                options.MaxSubscriptions = 3;
            })
            .BuildServiceProvider();
        _registry = _services.GetRequiredService<SubscriberRegistry>();
    }

    public void Dispose() => _services.Dispose();

    [Fact]
    public async Task Close_EndsOpenSubscriptions_AndRefusesLaterOnesAsShuttingDown()
    {
        var open = _registry.TryAdd("u1", out _)!;
        var partitions = _registry.TryAdd(new PartitionRange(0, 1), out _)!;

        _registry.Close();

        await open.Reader.Completion.WaitAsync(TimeSpan.FromSeconds(5));
        await partitions.Subscription.Reader.Completion.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Null(_registry.TryAdd("u2", out var userRefusal));
        Assert.Null(_registry.TryAdd(new PartitionRange(0, 0), out var rangeRefusal));
        Assert.All([userRefusal!, rangeRefusal!], refusal =>
        {
            Assert.True(refusal.ShuttingDown);
            Assert.Contains("shutting down", refusal.Reason, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void CompleteAll_EndsOpenSubscriptions_ButLaterOnesAreAccepted()
    {
        var first = _registry.TryAdd("u1", out _)!;

        _registry.CompleteAll();

        Assert.True(first.Reader.Completion.IsCompleted);
        _registry.Remove(first);
        Assert.NotNull(_registry.TryAdd("u1", out var refusal));
        Assert.Null(refusal);
    }

    [Fact]
    public void Limits_RefuseWithTheSettingToChange_NotAsShuttingDown()
    {
        Assert.NotNull(_registry.TryAdd("u1", out _));
        Assert.NotNull(_registry.TryAdd("u1", out _));
        Assert.Null(_registry.TryAdd("u1", out var perUser));
        Assert.NotNull(_registry.TryAdd("u2", out _));
        Assert.Null(_registry.TryAdd("u3", out var perProcess));

        Assert.False(perUser!.ShuttingDown);
        Assert.Contains("Edge:MaxSubscriptionsPerUser", perUser.Reason, StringComparison.Ordinal);
        Assert.False(perProcess!.ShuttingDown);
        Assert.Contains("Edge:MaxSubscriptions", perProcess.Reason, StringComparison.Ordinal);
        Assert.Equal(3, _registry.Count);
    }
}
