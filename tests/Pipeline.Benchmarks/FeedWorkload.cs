using System.Globalization;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Pipeline.Kafka;

namespace Pipeline.Benchmarks;

/// <summary>
/// The benchmark's social graph and traffic: users u0…u(S−1), authors a0…a(S/F−1); user i follows author i mod A,
/// so every post fans out to exactly F subscribers. Posts carry their send time (UTC ticks) and a per-author
/// sequence number, so a subscriber measures latency and detects gaps and duplicates without shared state.
/// </summary>
public sealed class FeedWorkload : IDisposable
{
    private readonly IProducer<string, byte[]> _producer;
    private readonly long[] _nextSequence;

    public FeedWorkload(string bootstrapServers, int subscribers, int fanOut)
    {
        Subscribers = subscribers;
        FanOut = fanOut;
        Authors = Math.Max(1, subscribers / fanOut);
        _nextSequence = new long[Authors];
        _producer = new ProducerBuilder<string, byte[]>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            Partitioner = Partitioner.Murmur2Random,
            LingerMs = 1,
            EnableIdempotence = true,
        }).Build();
    }

    public int Subscribers { get; }

    public int FanOut { get; }

    public int Authors { get; }

    public long PostsSent { get; private set; }

    public static string User(int i) => string.Create(CultureInfo.InvariantCulture, $"u{i}");

    public static string Author(int a) => string.Create(CultureInfo.InvariantCulture, $"a{a}");

    public int AuthorOf(int user) => user % Authors;

    /// <summary>The follow graph in memory, author → followers: what the raw loops look followers up in.</summary>
    public Dictionary<string, string[]> FollowersByAuthor() =>
        Enumerable.Range(0, Subscribers).GroupBy(AuthorOf).ToDictionary(g => Author(g.Key), g => g.Select(User).ToArray());

    public async Task FollowAllAsync(CancellationToken cancellationToken)
    {
        for (var i = 0; i < Subscribers; i++)
        {
            var follow = new FollowEvent { EventId = $"f{i}", FollowerId = User(i), FolloweeId = Author(AuthorOf(i)), Action = FollowAction.Follow, OccurredAtMs = 1 };
            _producer.Produce(FeedTopics.Follows, new Message<string, byte[]> { Key = follow.FollowerId, Value = follow.ToByteArray() });
            if (i % 10_000 == 0)
            {
                await Task.Yield();
            }
        }

        _producer.Flush(cancellationToken);
    }

    /// <summary>Posts at <paramref name="postsPerSecond"/> for <paramref name="duration"/>, round-robin over the authors.</summary>
    public async Task PostAsync(double postsPerSecond, TimeSpan duration, CancellationToken cancellationToken)
    {
        await PaceAsync(postsPerSecond, duration, () => PostOne((int)(PostsSent % Authors)), cancellationToken);
        _producer.Flush(cancellationToken);
    }

    /// <summary>Calls <paramref name="sendOne"/> <paramref name="perSecond"/> times a second for <paramref name="duration"/>, catching up after any stall.</summary>
    public static async Task PaceAsync(double perSecond, TimeSpan duration, Action sendOne, CancellationToken cancellationToken)
    {
        var started = DateTime.UtcNow;
        long sent = 0;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
        while (DateTime.UtcNow - started < duration && await timer.WaitForNextTickAsync(cancellationToken))
        {
            for (var due = (long)((DateTime.UtcNow - started).TotalSeconds * perSecond); sent < due; sent++)
            {
                sendOne();
            }
        }
    }

    /// <summary>Sends <paramref name="count"/> posts as fast as the producer takes them (a backlog).</summary>
    public void PostBacklog(long count, CancellationToken cancellationToken)
    {
        for (var i = 0; i < count; i++)
        {
            PostOne((int)(PostsSent % Authors));
        }

        _producer.Flush(cancellationToken);
    }

    public void Dispose() => _producer.Dispose();

    /// <summary>Parses what <see cref="PostOne"/> put in the body: send time, author index, sequence.</summary>
    public static (long SentTicks, int Author, long Sequence) ParseBody(string body)
    {
        var parts = body.Split('|');
        return (long.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture), long.Parse(parts[2], CultureInfo.InvariantCulture));
    }

    private void PostOne(int author)
    {
        var sequence = _nextSequence[author]++;
        var now = DateTime.UtcNow;
        var post = new PostEvent
        {
            PostId = string.Create(CultureInfo.InvariantCulture, $"a{author}-{sequence}"),
            AuthorId = Author(author),
            Action = PostAction.Created,
            Body = string.Create(CultureInfo.InvariantCulture, $"{now.Ticks}|{author}|{sequence}"),
            CreatedAtMs = new DateTimeOffset(now).ToUnixTimeMilliseconds(),
            OccurredAtMs = new DateTimeOffset(now).ToUnixTimeMilliseconds(),
        };
        _producer.Produce(FeedTopics.Posts, new Message<string, byte[]> { Key = post.AuthorId, Value = post.ToByteArray() });
        PostsSent++;
    }
}
