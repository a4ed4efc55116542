using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
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
        using var watchMine = StreamizLogging.Attach(mine, NullLoggerFactory.Instance, () => mineLost++);
        using var watchOther = StreamizLogging.Attach(other, NullLoggerFactory.Instance, () => otherLost++);
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
        using var watch = StreamizLogging.Attach(client, NullLoggerFactory.Instance, () => lost++);

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
        StreamizLogging.Attach(client, NullLoggerFactory.Instance, () => lost++).Dispose();

        StreamizLogging.Instance.CreateLogger(StreamThreadCategory).LogWarning("stream-thread[{Client}-stream-thread-0] Detected that the thread throw an inner exception.", client);

        Assert.Equal(0, lost);
    }

    /// <summary>
    /// Several processors in one process (the test suite, the dev stack): a line naming a client reaches only that
    /// client's host, a line naming none reaches every host, a detached host nothing.
    /// </summary>
    [Fact]
    public void Lines_GoToTheHostOfTheClientTheyName_OrToEveryHost()
    {
        var (one, two) = ($"feed-processor-{Guid.NewGuid():N}", $"feed-processor-{Guid.NewGuid():N}");
        var (oneLines, twoLines) = (new Collected(), new Collected());
        using var attachOne = StreamizLogging.Attach(one, oneLines);
        var attachTwo = StreamizLogging.Attach(two, twoLines);
        var log = StreamizLogging.Instance.CreateLogger("Streamiz.Kafka.Net.KafkaStream");

        // Other tests run Streamiz in this process at the same time, and their client-less lines reach every attached
        // host too: only this test's lines (its client ids, its marker) are checked.
        var marker = $"no client named here {Guid.NewGuid():N}";
        log.LogError("stream-client[{Client}] State transition from RUNNING to ERROR", two);
        log.LogInformation("{Marker}", marker);
        attachTwo.Dispose();
        log.LogInformation("after {Client} detached", two);

        List<string> Own(Collected collected) => [.. collected.Snapshot().Where(l => l.Contains(marker, StringComparison.Ordinal) || l.Contains(one, StringComparison.Ordinal) || l.Contains(two, StringComparison.Ordinal))];
        Assert.Equal([marker, $"after {two} detached"], Own(oneLines));
        Assert.Equal([$"stream-client[{two}] State transition from RUNNING to ERROR", marker], Own(twoLines));
    }

    private sealed class Collected : ILoggerFactory, ILoggerProvider
    {
        private readonly List<string> _lines = [];

        public List<string> Snapshot()
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }

        public ILogger CreateLogger(string categoryName) => new Line(_lines);

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }

        private sealed class Line(List<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (lines)
                {
                    lines.Add(formatter(state, exception));
                }
            }
        }
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
