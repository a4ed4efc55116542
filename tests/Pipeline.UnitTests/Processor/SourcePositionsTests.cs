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

    /// <summary>A reading with tasks open on a stable set of partitions, a beating thread and an up-to-date group.</summary>
    private static ProgressSample Working(long processed, long ownedEnd, long heartbeats, int ownedVersion = 1) =>
        new(processed, heartbeats, OpenTasks: 3, ownedEnd, ownedVersion, GroupOutputEnd: processed, GroupLag: 0);

    /// <summary>A reading of an instance without tasks.</summary>
    private static ProgressSample Spare(long groupOutput, long groupLag) =>
        new(Processed: 0, Heartbeats: 0, OpenTasks: 0, OwnedInputEnd: 0, OwnedInputsVersion: 0, groupOutput, groupLag);

    [Fact]
    public void NoProgress_WhenOwnInputGrewAndNothingWasProcessed_ForTheTimeoutFromTheFirstReadingThatShowedIt()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));
        long beats = 0;

        Assert.Equal(Stall.None, detector.Check(Start, Working(processed: 10, ownedEnd: 100, ++beats)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(60), Working(10, 100, ++beats))); // idle: no new input
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(65), Working(10, 120, ++beats))); // input after a long idle: the clock starts now
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(90), Working(10, 130, ++beats))); // 25 s: within the timeout
        Assert.Equal(Stall.NoProgress, detector.Check(Start.AddSeconds(96), Working(10, 130, ++beats)));
    }

    [Fact]
    public void NoProgress_ProgressStartsTheClockOver()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));
        long beats = 0;

        Assert.Equal(Stall.None, detector.Check(Start, Working(10, 100, ++beats)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(5), Working(10, 120, ++beats)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(30), Working(11, 130, ++beats))); // progress
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(50), Working(11, 140, ++beats)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(80), Working(11, 140, ++beats))); // 30 s since growth was first seen
        Assert.Equal(Stall.NoProgress, detector.Check(Start.AddSeconds(81), Working(11, 140, ++beats)));
    }

    [Fact]
    public void NoProgress_NotWhenARebalanceChangedThePartitions()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));
        long beats = 0;

        // The instance gains idle partitions: the sum of its end offsets jumps, but nothing new arrived.
        Assert.Equal(Stall.None, detector.Check(Start, Working(10, 100, ++beats, ownedVersion: 1)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(5), Working(10, 5_000, ++beats, ownedVersion: 2)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(100), Working(10, 5_000, ++beats, ownedVersion: 2)));
    }

    [Fact]
    public void NoProgress_NeverForAnInstanceWithoutTasks_WhileTheGroupWorks()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));

        // A spare instance (more instances than partitions): input flows and the group writes; it processes nothing.
        for (var second = 0; second <= 300; second += 5)
        {
            Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(second), Spare(groupOutput: 1_000 + (second * 10), groupLag: 25)));
        }
    }

    [Fact]
    public void NoAssignment_WhenNoTasksHere_InputWaits_AndTheGroupWritesNothing()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));

        Assert.Equal(Stall.None, detector.Check(Start, Spare(groupOutput: 500, groupLag: 7)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(30), Spare(500, 7)));
        Assert.Equal(Stall.NoAssignment, detector.Check(Start.AddSeconds(31), Spare(500, 7)));
    }

    [Fact]
    public void NoAssignment_NotForAnIdleGroup_NorOnceDismissed()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));

        // Idle: nothing past the commits.
        Assert.Equal(Stall.None, detector.Check(Start, Spare(500, groupLag: 0)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(100), Spare(500, 0)));

        // Offsets past the commits that the watchdog found to be transaction markers only: the clock starts over.
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(105), Spare(500, 3)));
        Assert.Equal(Stall.NoAssignment, detector.Check(Start.AddSeconds(140), Spare(500, 3)));
        detector.DismissGroupStall();
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(145), Spare(500, 3)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(170), Spare(500, 3)));
        Assert.Equal(Stall.NoAssignment, detector.Check(Start.AddSeconds(176), Spare(500, 3)));
    }

    [Fact]
    public void NoHeartbeat_WhenTasksAreOpenAndTheirThreadStoppedLooping_EvenWithoutNewInput()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));

        Assert.Equal(Stall.None, detector.Check(Start, Working(processed: 10, ownedEnd: 10, heartbeats: 5)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(20), Working(10, 10, 5))); // within the timeout
        Assert.Equal(Stall.NoHeartbeat, detector.Check(Start.AddSeconds(31), Working(10, 10, 5)));
    }

    [Fact]
    public void NoTasks_NoHeartbeatExpected()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));

        Assert.Equal(Stall.None, detector.Check(Start, Spare(0, 0)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(100), Spare(0, 0)));

        // Tasks open later: the clock runs from the last check without tasks, not from the first check.
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(110), Working(0, 0, heartbeats: 0)));
        Assert.Equal(Stall.NoHeartbeat, detector.Check(Start.AddSeconds(141), Working(0, 0, heartbeats: 0)));
    }

    [Fact]
    public void Reset_StartsOver()
    {
        var detector = new StallDetector(TimeSpan.FromSeconds(30));
        detector.Check(Start, Working(5, 50, 1));
        detector.Check(Start.AddSeconds(5), Working(5, 90, 1));
        detector.Check(Start.AddSeconds(10), Spare(500, 7));
        detector.Reset();

        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(100), Working(5, 90, 1)));
        Assert.Equal(Stall.None, detector.Check(Start.AddSeconds(101), Spare(500, 7)));
    }
}
