using System.Diagnostics.Metrics;
using System.Reflection;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using Pipeline.Processor;

namespace Pipeline.UnitTests.Processor;

public sealed class StreamThreadProducerTests
{
    [Fact]
    public void ACommit_IsTimedFromItsFirstFlush_WhichLeavesTheDeliveryToTheCommit_AndEverythingElseIsForwarded()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var metrics = new ProcessorMetrics(meters);
        using var commits = new MetricCollector<double>(meters, ProcessorMetrics.MeterName, "feed.processor.transaction.commit.duration");
        var inner = SlowTransactions.Create();
        using var producer = new StreamThreadProducer(inner, metrics);

        producer.BeginTransaction();
        producer.Produce("feed.updates", new Message<byte[], byte[]> { Key = [1], Value = [2] });
        producer.Flush(CancellationToken.None);
        Thread.Sleep(30);
        producer.SendOffsetsToTransaction([], null!, TimeSpan.FromSeconds(1));
        producer.CommitTransaction();

        // Inside the transaction the flush is left to the commit (librdkafka's commit delivers everything first);
        // the one measurement spans the 30 ms after it, the offsets and the commit (30 ms each).
        var commit = Assert.Single(commits.GetMeasurementSnapshot());
        Assert.InRange(commit.Value, 0.09, 60);
        Assert.Equal(["BeginTransaction", "Produce", "SendOffsetsToTransaction", "CommitTransaction"], ((SlowTransactions)(object)inner).Calls);

        // After the commit nothing is outstanding, and a flush outside a transaction has nothing to wait for.
        producer.Flush(CancellationToken.None);
        Assert.Equal(4, ((SlowTransactions)(object)inner).Calls.Count);
    }

    [Fact]
    public void AnAbortedTransaction_IsNotACommit_AndTheNextCommitIsTimedFromItsOwnStart()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var metrics = new ProcessorMetrics(meters);
        using var commits = new MetricCollector<double>(meters, ProcessorMetrics.MeterName, "feed.processor.transaction.commit.duration");
        using var producer = new StreamThreadProducer(SlowTransactions.Create(), metrics);

        producer.SendOffsetsToTransaction([], null!, TimeSpan.FromSeconds(1));
        producer.AbortTransaction();
        Assert.Empty(commits.GetMeasurementSnapshot());

        Thread.Sleep(1000);
        producer.CommitTransaction(TimeSpan.FromSeconds(1));

        // Timed from the commit itself (30 ms), not from the aborted transaction's offsets more than a second earlier.
        var commit = Assert.Single(commits.GetMeasurementSnapshot());
        Assert.InRange(commit.Value, 0.03, 0.9);
    }

    [Fact]
    public void ATransactionsSpan_RunsFromItsFirstRecordToItsCommit_AndOnlyTransactionsWithRecordsHaveOne()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var metrics = new ProcessorMetrics(meters);
        using var spans = new MetricCollector<double>(meters, ProcessorMetrics.MeterName, "feed.processor.transaction.span");
        using var producer = new StreamThreadProducer(SlowTransactions.Create(), metrics);

        // Offsets only (an idle commit): no record waited, no span.
        producer.BeginTransaction();
        producer.SendOffsetsToTransaction([], null!, TimeSpan.FromSeconds(1));
        producer.CommitTransaction();
        Assert.Empty(spans.GetMeasurementSnapshot());

        // From the first record, not from the transaction's start 2 s before it: the 50 ms after it and the 30 ms
        // commit (the upper bound leaves the machine 1.9 s of stalls before it could mistake one for the other).
        producer.BeginTransaction();
        Thread.Sleep(2000);
        producer.Produce("feed.updates", new Message<byte[], byte[]> { Key = [1], Value = [2] });
        Thread.Sleep(50);
        producer.Produce("feed.updates", new Message<byte[], byte[]> { Key = [3], Value = [4] });
        producer.CommitTransaction();
        Assert.InRange(Assert.Single(spans.GetMeasurementSnapshot()).Value, 0.08, 1.99);

        // An aborted transaction's records never become visible: the next span starts at the next one's first record.
        producer.BeginTransaction();
        producer.Produce("feed.updates", new Message<byte[], byte[]> { Key = [5], Value = [6] });
        producer.AbortTransaction();
        Thread.Sleep(2000);
        producer.BeginTransaction();
        producer.Produce("feed.updates", new Message<byte[], byte[]> { Key = [7], Value = [8] });
        producer.CommitTransaction();
        Assert.Equal(2, spans.GetMeasurementSnapshot().Count);
        Assert.InRange(spans.GetMeasurementSnapshot()[^1].Value, 0.03, 1.99);
    }

    [Fact]
    public void StreamizBuildsItsProducersThroughTheTimingWrapper()
    {
        var metrics = new ProcessorMetrics();
        var clients = new ObservedKafkaClients(new RepartitionPurge(metrics, new FakeLogger<RepartitionPurge>()), metrics);

        using var producer = clients.GetProducerBuilder(new ProducerConfig { BootstrapServers = "127.0.0.1:9", ClientId = "timing-test" }).Build();

        Assert.IsType<StreamThreadProducer>(producer);
        Assert.StartsWith("timing-test#", producer.Name, StringComparison.Ordinal);
    }

    [Fact]
    public void AFlush_ReturnsOnceTheRecordsProducedBeforeItAreAcknowledged_AndOneWithNothingNewDoesNotWait()
    {
        var fake = SlowTransactions.Create();
        var inner = (SlowTransactions)(object)fake;
        using var producer = new StreamThreadProducer(fake, new ProcessorMetrics());

        producer.Flush(CancellationToken.None);
        Assert.Empty(inner.Calls);

        producer.Produce("feed.updates", new Message<byte[], byte[]> { Key = [1], Value = [2] });
        inner.Unacknowledged.Enqueue(3);
        inner.Unacknowledged.Enqueue(1);
        producer.Flush(CancellationToken.None);

        // Polled until nothing was left unacknowledged: 3, 1, then 0.
        Assert.Equal(["Produce", "Flush", "Flush", "Flush"], inner.Calls);
        Assert.Empty(inner.Unacknowledged);

        producer.Flush(CancellationToken.None);
        Assert.Equal(4, inner.Calls.Count);
    }

    [Fact]
    public void AFlushThatNeverCompletes_EndsWhenCancelled()
    {
        var inner = SlowTransactions.Create();
        using var producer = new StreamThreadProducer(inner, new ProcessorMetrics());
        ((SlowTransactions)(object)inner).NeverAcknowledged = true;
        using var cancelled = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        producer.Produce("feed.updates", new Message<byte[], byte[]> { Key = [1], Value = [2] });

        Assert.Throws<OperationCanceledException>(() => producer.Flush(cancelled.Token));
    }

    /// <summary>
    /// A producer whose transaction calls take 30 ms each and whose Flush(timeout) reports <see cref="Unacknowledged"/>
    /// counts in turn (then 0); it records every call it gets.
    /// </summary>
    public class SlowTransactions : DispatchProxy
    {
        public List<string> Calls { get; } = [];

        public Queue<int> Unacknowledged { get; } = new();

        public bool NeverAcknowledged { get; set; }

        public static IProducer<byte[], byte[]> Create() => DispatchProxy.Create<IProducer<byte[], byte[]>, SlowTransactions>();

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            var name = targetMethod!.Name;
            if (name == nameof(IDisposable.Dispose))
            {
                return null;
            }

            Calls.Add(name);
            if (name is nameof(IProducer<byte[], byte[]>.Flush) or nameof(IProducer<byte[], byte[]>.SendOffsetsToTransaction) or nameof(IProducer<byte[], byte[]>.CommitTransaction) or nameof(IProducer<byte[], byte[]>.AbortTransaction))
            {
                Thread.Sleep(30);
            }

            return name == nameof(IProducer<byte[], byte[]>.Flush) && args is [TimeSpan]
                ? NeverAcknowledged ? 1 : Unacknowledged.TryDequeue(out var left) ? left : 0
                : null;
        }
    }
}
