using System.Diagnostics;
using Confluent.Kafka;

namespace Pipeline.Processor;

/// <summary>
/// The producer a stream thread uses. It times each commit as the stream thread lives it, from the producer flush
/// that starts it (every record sent must be acknowledged), through the consumed offsets sent to the transaction,
/// to the transaction's commit, all synchronous on the stream thread: under exactly-once an update becomes visible
/// only at a commit, on each of the topology's two hops, so this is the first thing to read when post → edge
/// latency grows (<c>feed_processor_transaction_commit_duration_seconds</c>). With it, each transaction's span, from
/// its first record sent to its commit (<c>feed_processor_transaction_span_seconds</c>): how long a read_committed
/// consumer could not see that record.
/// </summary>
/// <remarks>
/// It also flushes less. Streamiz flushes the producer once per task on every commit (12 tasks here), and each
/// librdkafka flush waits in 10 ms steps for the acknowledgements, which the client's own poll thread receives: a
/// commit held the stream thread for 105–178 ms, of which the 12 flushes took all but a few.
/// <list type="bullet">
/// <item>Inside a transaction a flush returns at once: committing the transaction delivers every outstanding record
/// before it commits (librdkafka's <c>commit_transaction</c>), and aborting it discards them, so nothing waits for the
/// acknowledgements twice. Streamiz reads them only for changelog checkpoints, which under exactly-once it writes
/// when a task closes, after the commit.</item>
/// <item>Outside one (at-least-once), a flush with nothing produced since the last completed one returns at once,
/// and the others check for the acknowledgements every millisecond.</item>
/// </list>
/// Everything else is forwarded unchanged.
/// </remarks>
public sealed class StreamThreadProducer(IProducer<byte[], byte[]> inner, ProcessorMetrics metrics) : IProducer<byte[], byte[]>
{
    private long _commitStarted;

    /// <summary>When the open transaction's first record was sent (0: none yet).</summary>
    private long _firstSent;
    private long _producedSinceFlush;
    private bool _inTransaction;

    public Handle Handle => inner.Handle;

    public string Name => inner.Name;

    public int AddBrokers(string brokers) => inner.AddBrokers(brokers);

    public void SetSaslCredentials(string username, string password) => inner.SetSaslCredentials(username, password);

    public Task<DeliveryResult<byte[], byte[]>> ProduceAsync(string topic, Message<byte[], byte[]> message, CancellationToken cancellationToken = default)
    {
        Produced();
        return inner.ProduceAsync(topic, message, cancellationToken);
    }

    public Task<DeliveryResult<byte[], byte[]>> ProduceAsync(TopicPartition topicPartition, Message<byte[], byte[]> message, CancellationToken cancellationToken = default)
    {
        Produced();
        return inner.ProduceAsync(topicPartition, message, cancellationToken);
    }

    public void Produce(string topic, Message<byte[], byte[]> message, Action<DeliveryReport<byte[], byte[]>>? deliveryHandler = null)
    {
        Produced();
        inner.Produce(topic, message, deliveryHandler);
    }

    public void Produce(TopicPartition topicPartition, Message<byte[], byte[]> message, Action<DeliveryReport<byte[], byte[]>>? deliveryHandler = null)
    {
        Produced();
        inner.Produce(topicPartition, message, deliveryHandler);
    }

    public int Poll(TimeSpan timeout) => inner.Poll(timeout);

    public int Flush(TimeSpan timeout)
    {
        Begin();
        return inner.Flush(timeout);
    }

    /// <summary>
    /// Outside a transaction, returns once every record produced before the call is acknowledged (or failed), as
    /// librdkafka's flush does; inside one, at once, leaving that to the commit.
    /// </summary>
    public void Flush(CancellationToken cancellationToken = default)
    {
        Begin();
        if (_inTransaction || Interlocked.Exchange(ref _producedSinceFlush, 0) == 0)
        {
            return;
        }

        // Flush(0) is one non-blocking pass; it returns what is still unacknowledged.
        while (inner.Flush(TimeSpan.Zero) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Thread.Sleep(1);
        }
    }

    public void InitTransactions(TimeSpan timeout) => inner.InitTransactions(timeout);

    public void BeginTransaction()
    {
        inner.BeginTransaction();
        _inTransaction = true;
    }

    public void SendOffsetsToTransaction(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, TimeSpan timeout)
    {
        Begin();
        inner.SendOffsetsToTransaction(offsets, groupMetadata, timeout);
    }

    public void CommitTransaction(TimeSpan timeout)
    {
        var started = Started();
        inner.CommitTransaction(timeout);
        Committed(started);
    }

    public void CommitTransaction()
    {
        var started = Started();
        inner.CommitTransaction();
        Committed(started);
    }

    public void AbortTransaction(TimeSpan timeout)
    {
        inner.AbortTransaction(timeout);
        Ended();
    }

    public void AbortTransaction()
    {
        inner.AbortTransaction();
        Ended();
    }

    public void Dispose() => inner.Dispose();

    /// <summary>Marks the first step of a commit (a flush, or the offsets when nothing was flushed).</summary>
    private void Begin()
    {
        if (_commitStarted == 0)
        {
            _commitStarted = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>When this commit began: at its first step, else now.</summary>
    private long Started() => _commitStarted != 0 ? _commitStarted : Stopwatch.GetTimestamp();

    private void Committed(long started)
    {
        var now = Stopwatch.GetTimestamp();
        metrics.TransactionCommitted(Stopwatch.GetElapsedTime(started, now));
        if (_firstSent != 0)
        {
            metrics.TransactionSpanned(Stopwatch.GetElapsedTime(_firstSent, now));
        }

        Ended();
    }

    private void Produced()
    {
        Interlocked.Increment(ref _producedSinceFlush);
        if (_inTransaction && _firstSent == 0)
        {
            _firstSent = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>
    /// A committed transaction delivered every record, an aborted one discarded them: nothing is outstanding, and
    /// the next commit is timed from its own first step.
    /// </summary>
    private void Ended()
    {
        _commitStarted = 0;
        _firstSent = 0;
        _inTransaction = false;
        Interlocked.Exchange(ref _producedSinceFlush, 0);
    }
}
