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
    public void Close_EndsOpenSubscriptions_AndRefusesLaterOnesAsShuttingDown()
    {
        var open = _registry.TryAdd("u1", out _)!;
        var partitions = _registry.TryAdd(new PartitionRange(0, 1), out _)!;

        _registry.Close();

        Assert.True(open.Queue.IsCompleted);
        Assert.True(partitions.Subscription.Queue.IsCompleted);
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

        Assert.True(first.Queue.IsCompleted);
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

    [Fact]
    public async Task ConcurrentAddsAndRemoves_NeverExceedALimit_AndLeaveNothingBehind()
    {
        // 8 workers each hold up to 50 subscriptions over 25 users: even one worker alone hits both the per-user
        // limit (3) and the process limit (40) over and over.
        using var services = Registry(perUser: 3, perProcess: 40, out var registry);
        var users = Enumerable.Range(0, 25).Select(i => $"u{i}").ToArray();
        int mostPerUser = 0, mostHeld = 0, held = 0, perUserRefusals = 0, processRefusals = 0;

        await Task.WhenAll(Enumerable.Range(0, 8).Select(worker => Task.Run(() =>
        {
            var random = new Random(worker);
            var mine = new Queue<Subscription<Feed.V1.FeedEvent>>();
            for (var i = 0; i < 5_000; i++)
            {
                var user = users[random.Next(users.Length)];
                if (registry.TryAdd(user, out var refusal) is not { } subscription)
                {
                    Assert.False(refusal!.ShuttingDown);
                    Interlocked.Increment(ref refusal.Reason.Contains("PerUser", StringComparison.Ordinal) ? ref perUserRefusals : ref processRefusals);
                    continue;
                }

                InterlockedMax(ref mostHeld, Interlocked.Increment(ref held));
                InterlockedMax(ref mostPerUser, registry.SubscriptionsOf(user).Count);
                mine.Enqueue(subscription);
                if (mine.Count > 50)
                {
                    Interlocked.Decrement(ref held);
                    registry.Remove(mine.Dequeue());
                }
            }

            while (mine.TryDequeue(out var subscription))
            {
                Interlocked.Decrement(ref held);
                registry.Remove(subscription);
            }
        })));

        Assert.InRange(mostPerUser, 1, 3);
        Assert.InRange(mostHeld, 1, 40);
        Assert.True(perUserRefusals > 0 && processRefusals > 0, $"limits not exercised: {perUserRefusals} per-user and {processRefusals} process refusals");
        Assert.Equal(0, registry.Count);
        Assert.All(users, user => Assert.False(registry.HasSubscribers(user)));
    }

    [Fact]
    public async Task Close_RacingWithAdds_EndsEverySubscriptionItAccepted()
    {
        using var services = Registry(perUser: 1_000_000, perProcess: 10_000_000, out var registry);
        var accepted = new System.Collections.Concurrent.ConcurrentBag<Subscription<Feed.V1.FeedEvent>>();

        var adders = Enumerable.Range(0, 4).Select(worker => Task.Run(() =>
        {
            for (var n = 0; ; n++)
            {
                if (registry.TryAdd($"u{worker}-{n % 100}", out var refusal) is not { } subscription)
                {
                    Assert.True(refusal!.ShuttingDown);
                    return;
                }

                accepted.Add(subscription);
            }
        })).ToArray();

        // Close while the adders are busy (not before they start, which would race nothing).
        Assert.True(SpinWait.SpinUntil(() => accepted.Count >= 1_000, TimeSpan.FromSeconds(30)), "the adders never got going");
        registry.Close();
        await Task.WhenAll(adders);

        Assert.All(accepted, subscription => Assert.True(subscription.Queue.IsCompleted, "a subscription accepted around Close() was left open"));
        Assert.Equal(accepted.Count, registry.Count);
    }

    [Fact]
    public void PulseSlices_OverOneInterval_GiveEverySubscriptionOneHeartbeat_SpreadEvenly()
    {
        using var services = Registry(perUser: 2, perProcess: 2_000, out var registry);
        var subscriptions = Enumerable.Range(0, 1_000).Select(i => registry.TryAdd($"user-{i}", out _)!).ToList();
        var slices = HeartbeatTicker.SlicesFor(TimeSpan.FromSeconds(15));

        var perSlice = new List<int>();
        for (var slice = 0; slice < slices; slice++)
        {
            var before = subscriptions.Sum(s => s.Queue.Count);
            registry.PulseSlice(slice, slices);
            perSlice.Add(subscriptions.Sum(s => s.Queue.Count) - before);
        }

        Assert.Equal(15, slices);
        Assert.All(subscriptions, s => Assert.Equal(1, s.Queue.Count));
        Assert.True(perSlice.Max() < 2 * 1_000 / slices, $"a slice pulsed {perSlice.Max()} of 1,000 subscriptions at once (slices: {string.Join(", ", perSlice)})");
    }

    [Theory]
    [InlineData(300, 1)]
    [InlineData(1_000, 1)]
    [InlineData(15_000, 15)]
    [InlineData(600_000, 64)]
    public void HeartbeatSlices_AreAboutOneSecondApart(int intervalMs, int expected) =>
        Assert.Equal(expected, HeartbeatTicker.SlicesFor(TimeSpan.FromMilliseconds(intervalMs)));

    private static ServiceProvider Registry(int perUser, int perProcess, out SubscriberRegistry registry)
    {
        var services = new ServiceCollection()
            .AddMetrics()
            .AddSingleton<EdgeMetrics>()
            .AddSingleton<SubscriberRegistry>()
            .Configure<EdgeOptions>(options =>
            {
                options.MaxSubscriptionsPerUser = perUser;
                options.MaxSubscriptions = perProcess;
            })
            .BuildServiceProvider();
        registry = services.GetRequiredService<SubscriberRegistry>();
        return services;
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
