using Confluent.Kafka;
using Feed.V1;
using Pipeline.Kafka;

namespace Pipeline.FaultBattery;

/// <summary>One committed feed.updates record as the battery saw it.</summary>
public sealed record ObservedUpdate(string User, FeedUpdateKind Kind, string Author, string PostId, int Partition, long Offset);

/// <summary>
/// An independent reader of feed.updates (read-committed, as the edge reads it) that keeps every update in memory
/// for the verifier. It tails the topic from the beginning for the whole scenario, so what it holds at the end is
/// everything the processors committed, whatever crashed in between.
/// </summary>
public sealed class UpdateLog : IDisposable
{
    private readonly List<ObservedUpdate> _updates = [];
    private readonly HashSet<(string User, string PostId)> _added = [];
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reading;
    private long _malformed;

    public UpdateLog(string bootstrapServers, int partitions)
    {
        _reading = Task.Factory.StartNew(() => Read(bootstrapServers, partitions), TaskCreationOptions.LongRunning);
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _updates.Count;
            }
        }
    }

    /// <summary>Records in feed.updates that are not a parsable update (must stay 0).</summary>
    public long Malformed => Interlocked.Read(ref _malformed);

    public bool HasAdded(string user, string postId)
    {
        lock (_gate)
        {
            return _added.Contains((user, postId));
        }
    }

    public List<ObservedUpdate> Snapshot()
    {
        lock (_gate)
        {
            return [.. _updates];
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _reading.Wait(TimeSpan.FromSeconds(10));
        _stop.Dispose();
    }

    private void Read(string bootstrapServers, int partitions)
    {
        using var consumer = new ConsumerBuilder<string, byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "fault-battery-verifier",
            EnableAutoCommit = false,
            IsolationLevel = IsolationLevel.ReadCommitted,
            FetchWaitMaxMs = 50,
        }).SetLogHandler((_, _) => { }).Build(); // broker faults are the point of some scenarios; their reconnect chatter is noise
        consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(FeedTopics.FeedUpdates, p, Offset.Beginning)));
        while (!_stop.IsCancellationRequested)
        {
            ConsumeResult<string, byte[]>? result;
            try
            {
                result = consumer.Consume(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (ConsumeException)
            {
                // The broker is down (a scenario's fault); the consumer reconnects by itself.
                continue;
            }

            if (result?.Message is null)
            {
                continue;
            }

            FeedUpdate update;
            try
            {
                update = FeedUpdate.Parser.ParseFrom(result.Message.Value);
            }
            catch (Google.Protobuf.InvalidProtocolBufferException)
            {
                Interlocked.Increment(ref _malformed);
                continue;
            }

            var observed = new ObservedUpdate(update.RecipientId, update.Kind, update.Post?.AuthorId ?? "", update.Post?.PostId ?? "", result.Partition.Value, result.Offset.Value);
            lock (_gate)
            {
                _updates.Add(observed);
                if (observed.Kind == FeedUpdateKind.Added)
                {
                    _added.Add((observed.User, observed.PostId));
                }
            }
        }

        consumer.Close();
    }
}
