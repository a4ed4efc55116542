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

    public DirectFeedUpdates(string bootstrapServers, FeedWorkload graph)
    {
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

    public void Dispose() => _producer.Dispose();

    private void PostOne(int author)
    {
        var sequence = _nextSequence[author]++;
        var now = DateTime.UtcNow;
        var nowMs = new DateTimeOffset(now).ToUnixTimeMilliseconds();
        var post = new Post
        {
            PostId = string.Create(CultureInfo.InvariantCulture, $"a{author}-{sequence}"),
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

            UpdatesSent++;
        }

        PostsSent++;
    }
}
