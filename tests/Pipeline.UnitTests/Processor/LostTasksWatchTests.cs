using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using Microsoft.Extensions.Logging;
using Pipeline.Processor;
using Streamiz.Kafka.Net;

namespace Pipeline.UnitTests.Processor;

public sealed class LostTasksWatchTests
{
    private const string StreamThreadCategory = "Streamiz.Kafka.Net.Processors.StreamThread";

    [Fact]
    public void StreamThreadClosingItsTasksAsZombies_NotifiesOnlyTheWatcherOfThatClient()
    {
        var mine = $"feed-processor-{Guid.NewGuid():N}";
        var other = $"feed-processor-{Guid.NewGuid():N}";
        int mineLost = 0, otherLost = 0;
        using var watchMine = StreamizLogging.WatchForLostTasks(mine, () => mineLost++);
        using var watchOther = StreamizLogging.WatchForLostTasks(other, () => otherLost++);
        var log = StreamizLogging.Instance.CreateLogger(StreamThreadCategory);

        log.LogWarning(new InvalidOperationException("fenced"), "{LogPrefix}Detected that the thread is being fenced. This implies that this thread missed a rebalance and dropped out of the consumer group. Will close out all assigned tasks and rejoin the consumer group", $"stream-thread[{mine}-stream-thread-0] ");

        Assert.Equal(1, mineLost);
        Assert.Equal(0, otherLost);
    }

    [Fact]
    public void OtherLines_OtherCategoriesAndLowerLevels_AreIgnored()
    {
        var client = $"feed-processor-{Guid.NewGuid():N}";
        var lost = 0;
        using var watch = StreamizLogging.WatchForLostTasks(client, () => lost++);

        StreamizLogging.Instance.CreateLogger(StreamThreadCategory).LogInformation("stream-thread[{Client}-stream-thread-0] Detected that the thread is being fenced", client);
        StreamizLogging.Instance.CreateLogger("Streamiz.Kafka.Net.Processors.StreamTask").LogWarning("stream-thread[{Client}-stream-thread-0] Detected that the thread is being fenced", client);
        StreamizLogging.Instance.CreateLogger(StreamThreadCategory).LogWarning("stream-thread[{Client}-stream-thread-0] Encountered an error", client);

        Assert.Equal(0, lost);
    }

    [Fact]
    public void Disposed_Watch_IsNotCalled()
    {
        var client = $"feed-processor-{Guid.NewGuid():N}";
        var lost = 0;
        StreamizLogging.WatchForLostTasks(client, () => lost++).Dispose();

        StreamizLogging.Instance.CreateLogger(StreamThreadCategory).LogWarning("stream-thread[{Client}-stream-thread-0] Detected that the thread throw an inner exception.", client);

        Assert.Equal(0, lost);
    }

    /// <summary>
    /// The watch matches Streamiz's log text, so a Streamiz upgrade that rewords it must fail here rather than
    /// silently leave aborted writes in the stores: both lines that precede closing every task dirty
    /// (StreamThread.HandleTaskMigrated and HandleInnerException) are string literals in the shipped assembly.
    /// </summary>
    [Fact]
    public void TheShippedStreamiz_StillLogsTheLinesTheWatchMatches()
    {
        using var stream = File.OpenRead(typeof(KafkaStream).Assembly.Location);
        using var pe = new PEReader(stream);
        var metadata = pe.GetMetadataReader();
        var literals = new List<string>();
        var handle = MetadataTokens.UserStringHandle(1);
        while (!handle.IsNil)
        {
            literals.Add(metadata.GetUserString(handle));
            handle = metadata.GetNextHandle(handle);
        }

        Assert.Contains(literals, l => l.Contains("Detected that the thread is being fenced", StringComparison.Ordinal));
        Assert.Contains(literals, l => l.Contains("Detected that the thread throw an inner exception", StringComparison.Ordinal));
        Assert.Equal("Streamiz.Kafka.Net.Processors.StreamThread", typeof(KafkaStream).Assembly.GetType("Streamiz.Kafka.Net.Processors.StreamThread")?.FullName);
    }
}
