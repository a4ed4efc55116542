using System.Globalization;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Pipeline.Kafka;

namespace Pipeline.Benchmarks;

/// <summary>
/// The processor's output without the processor: for each post of <see cref="FeedWorkload"/>'s graph (round-robin
/// over the authors, same body "{UTC ticks}|{author}|{sequence}"), one live FeedUpdate per follower written straight
/// to feed.updates, keyed by recipient and partitioned as the processor does (murmur2). Lets a delivery layer be
/// measured at rates the processor cannot produce.
/// </summary>
public sealed class DirectFeedUpdates : IDisposable
{
    private readonly IProducer<string, byte[]> _producer;
    private readonly long[] _nextSequence;
    private readonly string[][] _followers;
    private readonly string _bootstrapServers;

    public DirectFeedUpdates(string bootstrapServers, FeedWorkload graph)
    {
        _bootstrapServers = bootstrapServers;
        _nextSequence = new long[graph.Authors];
        var byAuthor = Enumerable.Range(0, graph.Subscribers).ToLookup(graph.AuthorOf, FeedWorkload.User);
        _followers = [.. Enumerable.Range(0, graph.Authors).Select(a => byAuthor[a].ToArray())];
        _producer = new ProducerBuilder<string, byte[]>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            Partitioner = Partitioner.Murmur2Random,
            LingerMs = 1,
            EnableIdempotence = true,
        }).Build();
    }

    public long PostsSent { get; private set; }

    public long UpdatesSent { get; private set; }

    /// <summary>Posts at <paramref name="postsPerSecond"/> for <paramref name="duration"/>; each becomes one update per follower.</summary>
    public async Task PostAsync(double postsPerSecond, TimeSpan duration, CancellationToken cancellationToken)
    {
        await FeedWorkload.PaceAsync(postsPerSecond, duration, () => PostOne((int)(PostsSent % _followers.Length)), cancellationToken);
        _producer.Flush(cancellationToken);
    }

    /// <summary>
    /// Fills every follower's feed with <paramref name="perUser"/> updates as fast as the producer takes them, before
    /// anyone subscribes: posts of their own ("p{author}-{n}"), outside the sequences the live posts check, so a
    /// measured run can start with every feed at the edge's caps. Nothing counts them as sent. Fails when the broker
    /// did not keep them all: the embedded one (librdkafka's mock) keeps only the newest 5 MiB of each partition.
    /// Answers how many updates it wrote.
    /// </summary>
    public long Prefill(int perUser, int partitions, CancellationToken cancellationToken)
    {
        long written = 0;
        for (var n = 0; n < perUser && !cancellationToken.IsCancellationRequested; n++)
        {
            for (var author = 0; author < _followers.Length; author++)
            {
                written += Write(author, string.Create(CultureInfo.InvariantCulture, $"p{author}-{n}"), n);
            }
        }

        _producer.Flush(cancellationToken);
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _bootstrapServers, GroupId = "bench-prefill-check" }).Build();
        var dropped = Enumerable.Range(0, partitions)
            .Select(p => consumer.QueryWatermarkOffsets(new TopicPartition(FeedTopics.FeedUpdates, p), TimeSpan.FromSeconds(10)).Low.Value)
            .Sum();
        if (dropped > 0)
        {
            throw new InvalidOperationException(
                $"The broker kept only the newest part of the prefill ({dropped:N0} of {written:N0} updates are gone from the start of feed.updates): " +
                "the embedded broker keeps at most 5 MiB per partition. Spread it over more --partitions (about 60,000 of these updates fit in each), or prefill less.");
        }

        return written;
    }

    public void Dispose() => _producer.Dispose();

    private void PostOne(int author)
    {
        var sequence = _nextSequence[author]++;
        UpdatesSent += Write(author, string.Create(CultureInfo.InvariantCulture, $"a{author}-{sequence}"), sequence);
        PostsSent++;
    }

    /// <summary>One post of <paramref name="author"/>, one update per follower; answers how many it wrote.</summary>
    private int Write(int author, string postId, long sequence)
    {
        var now = DateTime.UtcNow;
        var nowMs = new DateTimeOffset(now).ToUnixTimeMilliseconds();
        var post = new Post
        {
            PostId = postId,
            AuthorId = FeedWorkload.Author(author),
            Body = string.Create(CultureInfo.InvariantCulture, $"{now.Ticks}|{author}|{sequence}"),
            CreatedAtMs = nowMs,
        };
        foreach (var recipient in _followers[author])
        {
            var update = new FeedUpdate { RecipientId = recipient, Kind = FeedUpdateKind.Added, Cause = FeedCause.Live, Post = post, SourceOccurredAtMs = nowMs };
            while (true)
            {
                try
                {
                    _producer.Produce(FeedTopics.FeedUpdates, new Message<string, byte[]> { Key = recipient, Value = update.ToByteArray() });
                    break;
                }
                catch (ProduceException<string, byte[]> ex) when (ex.Error.Code == ErrorCode.Local_QueueFull)
                {
                    _producer.Poll(TimeSpan.FromMilliseconds(10));
                }
            }
        }

        return _followers[author].Length;
    }
}
