using System.Reflection;
using Confluent.Kafka;
using Pipeline.Processor;
using Pipeline.Processor.Topology;
using Streamiz.Kafka.Net.State;

namespace Pipeline.UnitTests.Processor;

public sealed class SourcePositionsTests
{
    [Fact]
    public void Redelivered_RecordsAreSkipped_NewOnesAdmitted_PerTopic()
    {
        var metrics = new ProcessorMetrics();
        var positions = new SourcePositions(MemoryStore.Create(), metrics);

        Assert.True(positions.Admit(At("social.posts", 0)));
        Assert.True(positions.Admit(At("social.posts", 1)));
        Assert.True(positions.Admit(At("social.posts", 5)));      // gaps (transaction markers, compaction) are fine
        Assert.True(positions.Admit(At("follows-repartition", 0))); // each source topic has its own position

        // Committed offsets were lost: the consumer re-reads from the start; everything applied is skipped.
        Assert.False(positions.Admit(At("social.posts", 0)));
        Assert.False(positions.Admit(At("social.posts", 5)));
        Assert.False(positions.Admit(At("follows-repartition", 0)));
        Assert.True(positions.Admit(At("social.posts", 6)));
        Assert.Equal(3, metrics.RedeliveriesSkipped);
    }

    /// <summary>A task reopened after a rebalance or a restore gets a new instance over the same store.</summary>
    [Fact]
    public void AReopenedTask_SkipsWhatItsStoreSaysWasApplied()
    {
        var store = MemoryStore.Create();
        var before = new SourcePositions(store, new ProcessorMetrics());
        Assert.True(before.Admit(At("social.posts", 7)));

        var metrics = new ProcessorMetrics();
        var reopened = new SourcePositions(store, metrics);

        Assert.False(reopened.Admit(At("social.posts", 7)));
        Assert.True(reopened.Admit(At("social.posts", 8)));
        Assert.False(reopened.Admit(At("social.posts", 8)));
        Assert.Equal(2, metrics.RedeliveriesSkipped);
    }

    [Fact]
    public void WithoutAStore_EverythingIsAdmitted()
    {
        var positions = new SourcePositions(null, new ProcessorMetrics());

        Assert.True(positions.Admit(At("social.posts", 3)));
        Assert.True(positions.Admit(At("social.posts", 3)));
    }

    private static TopicPartitionOffset At(string topic, long offset) => new(topic, 0, offset);

    /// <summary>A key-value store with just Get and Put, as SourcePositions uses it; any other member throws.</summary>
    public class MemoryStore : DispatchProxy
    {
        private readonly Dictionary<string, long> _values = [];

        public static IKeyValueStore<string, long> Create() => DispatchProxy.Create<IKeyValueStore<string, long>, MemoryStore>();

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => targetMethod?.Name switch
        {
            "Get" => _values.GetValueOrDefault((string)args![0]!),
            "Put" => _values[(string)args![0]!] = (long)args[1]!,
            _ => throw new NotSupportedException(targetMethod?.Name),
        };
    }
}

public sealed class StallDetectorTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 28, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void NoProgress_OnlyWhenInputGrewAndNothingWasProcessedForTheTimeout()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));
        long beats = 0;

        Assert.Equal(Stall.None, detector.Check(Start, processed: 10, inputEnd: 100, ++beats, openTasks: 3));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(60), processed: 10, inputEnd: 100, ++beats, openTasks: 3)); // idle: no new input
        Assert.Equal(Stall.NoProgress, detector.Check(Start.AddSeconds(70), processed: 10, inputEnd: 120, ++beats, openTasks: 3)); // input grew, no progress for 70 s
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(75), processed: 11, inputEnd: 130, ++beats, openTasks: 3));  // progress resets the clock
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(100), processed: 11, inputEnd: 140, ++beats, openTasks: 3)); // 25 s: within the timeout
        Assert.Equal(Stall.NoProgress, detector.Check(Start.AddSeconds(106), processed: 11, inputEnd: 140, ++beats, openTasks: 3));
    }

    [Fact]
    public void NoHeartbeat_WhenTasksAreOpenAndTheirThreadStoppedLooping_EvenWithoutNewInput()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));

        Assert.Equal(Stall.None, detector.Check(Start, processed: 10, inputEnd: 10, heartbeats: 5, openTasks: 3));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(20), processed: 10, inputEnd: 10, heartbeats: 5, openTasks: 3)); // within the timeout
        Assert.Equal(Stall.NoHeartbeat, detector.Check(Start.AddSeconds(31), processed: 10, inputEnd: 10, heartbeats: 5, openTasks: 3));
    }

    [Fact]
    public void NoTasks_NoHeartbeatExpected()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));

        Assert.Equal(Stall.None, detector.Check(Start, processed: 0, inputEnd: 0, heartbeats: 0, openTasks: 0));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(100), processed: 0, inputEnd: 0, heartbeats: 0, openTasks: 0));

        // Tasks open later: the clock runs from the last check without tasks, not from the first check.
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(110), processed: 0, inputEnd: 0, heartbeats: 0, openTasks: 2));
        Assert.Equal(Stall.NoHeartbeat, detector.Check(Start.AddSeconds(141), processed: 0, inputEnd: 0, heartbeats: 0, openTasks: 2));
    }

    [Fact]
    public void Reset_StartsOver()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));
        detector.Check(Start, 5, 50, 1, 1);
        detector.Reset();

        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(100), 5, 90, 1, 1));
    }
}
