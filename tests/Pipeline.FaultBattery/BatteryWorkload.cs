using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Pipeline.Kafka;
using Pipeline.UnitTests.Processor;

namespace Pipeline.FaultBattery;

/// <summary>Sizes of a scenario's social graph.</summary>
public sealed record WorkloadShape(int Users, int ActiveAuthors, int QuietAuthors, int QuietPostsEach = 25, int FollowsPerUser = 3, int BodyBytes = 16);

/// <summary>
/// The battery's traffic, produced straight to the input topics as an ingest bridge would, and the reference model
/// fed with the same events in the same order.
/// </summary>
/// <remarks>
/// The model is exact only if the processor applies the events in an order with the same outcome. Kafka orders
/// events per key (author for posts, follower for follows), and follows reach the author stage through a
/// repartition topic, so the workload keeps every event that could race on different paths commutative:
/// <list type="bullet">
/// <item>seeding: every user follows a few active authors and the probe author, and that settles before any post;</item>
/// <item>quiet authors post only while seeding; under faults, users follow quiet authors (a deterministic backfill)
/// while only active authors post and delete their own posts (same key, so in order).</item>
/// </list>
/// Entries of different authors may interleave differently in a feed; the verifier compares each author's posts in
/// each feed, in order, which is everything the design orders.
/// </remarks>
public sealed class BatteryWorkload : IDisposable
{
    public const string ProbeAuthor = "probe";
    public const int BackfillSize = 20;

    private readonly IProducer<string, byte[]> _producer;
    private readonly Random _random;
    private readonly WorkloadShape _shape;
    private readonly Dictionary<string, List<string>> _livePosts = new(StringComparer.Ordinal);
    private readonly HashSet<(string User, string Author)> _follows = [];
    private int _nextPost;
    private int _markers;
    private int _malformedKind;
    private long _produceFailures;
    private long _acknowledged;
    private readonly string _body;

    public BatteryWorkload(string bootstrapServers, WorkloadShape shape, int seed)
    {
        _shape = shape;
        _random = new Random(seed);
        _body = new string('b', shape.BodyBytes);
        Users = [.. Enumerable.Range(0, shape.Users).Select(i => string.Create(CultureInfo.InvariantCulture, $"u{i}"))];
        ActiveAuthors = [.. Enumerable.Range(0, shape.ActiveAuthors).Select(i => string.Create(CultureInfo.InvariantCulture, $"act{i}"))];
        QuietAuthors = [.. Enumerable.Range(0, shape.QuietAuthors).Select(i => string.Create(CultureInfo.InvariantCulture, $"quiet{i}"))];
        Model = new FeedModel(BackfillSize, int.MaxValue);
        _producer = new ProducerBuilder<string, byte[]>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            Partitioner = Partitioner.Murmur2Random,
            EnableIdempotence = true,

            // One request in flight: with several, librdkafka's mock broker (2.16) can acknowledge a batch it never
            // appended after an injected produce error (seen as one record fewer in the topic than acknowledged),
            // and the model would then expect input the pipeline never saw. VerifyFeeds checks the count.
            MaxInFlight = 1,
            LingerMs = 2,
            // Broker faults in a scenario must not cost the workload its own records.
            MessageTimeoutMs = 300_000,
        }).SetLogHandler((_, _) => { }).SetErrorHandler((_, error) => ReportProducerError(error)).Build();
    }

    public IReadOnlyList<string> Users { get; }

    public IReadOnlyList<string> ActiveAuthors { get; }

    public IReadOnlyList<string> QuietAuthors { get; }

    internal FeedModel Model { get; }

    /// <summary>Markers produced so far; the newest is "marker-{Markers}".</summary>
    public int Markers => _markers;

    /// <summary>Records the broker refused after all retries; a run with any is not a valid measurement.</summary>
    public long ProduceFailures => Interlocked.Read(ref _produceFailures);

    /// <summary>Input records of every kind the broker acknowledged.</summary>
    public long Acknowledged => Interlocked.Read(ref _acknowledged);

    /// <summary>Valid input records produced.</summary>
    public long RecordsIn { get; private set; }

    /// <summary>Malformed input records produced (each must end in dead letters).</summary>
    public long MalformedIn { get; private set; }

    /// <summary>The seeding follows (each user: a few active authors and the probe author). Wait for the processor to apply them before posting.</summary>
    public int ProduceSeedFollows()
    {
        var count = 0;
        foreach (var (user, index) in Users.Select((u, i) => (u, i)))
        {
            for (var k = 0; k < _shape.FollowsPerUser; k++)
            {
                Follow(user, ActiveAuthors[(index + (k * 7)) % ActiveAuthors.Count]);
                count++;
            }

            Follow(user, ProbeAuthor);
            count++;
        }

        _producer.Flush();
        return count;
    }

    /// <summary>The quiet authors' posts (all of them, during seeding).</summary>
    public void ProduceQuietPosts()
    {
        foreach (var author in QuietAuthors)
        {
            for (var i = 0; i < _shape.QuietPostsEach; i++)
            {
                Post(author);
            }
        }

        _producer.Flush();
    }

    /// <summary>One event of the traffic under faults: mostly posts, some deletes, a few follows of quiet authors.</summary>
    public void ProduceNext()
    {
        var roll = _random.Next(100);
        if (roll < 2 && QuietAuthors.Count > 0)
        {
            var user = Users[_random.Next(Users.Count)];
            var author = QuietAuthors[_random.Next(QuietAuthors.Count)];
            if (!_follows.Contains((user, author)))
            {
                Follow(user, author);
                return;
            }
        }

        var active = ActiveAuthors[_random.Next(ActiveAuthors.Count)];
        if (roll < 12 && _livePosts.TryGetValue(active, out var posts) && posts.Count > 0)
        {
            var victim = posts[_random.Next(posts.Count)];
            posts.Remove(victim);
            Produce(FeedTopics.Posts, active, new PostEvent { PostId = victim, AuthorId = active, Action = PostAction.Deleted, OccurredAtMs = Now() });
            Model.Apply(new FeedInput.Delete(active, victim));
            return;
        }

        Post(active);
    }

    /// <summary>A post by the probe author, which every user follows: once every user has it, everything before it is applied.</summary>
    public string ProduceMarker()
    {
        var postId = string.Create(CultureInfo.InvariantCulture, $"marker-{++_markers}");
        Produce(FeedTopics.Posts, ProbeAuthor, new PostEvent { PostId = postId, AuthorId = ProbeAuthor, Action = PostAction.Created, Body = "marker", CreatedAtMs = Now(), OccurredAtMs = Now() });
        Model.Apply(new FeedInput.Post(ProbeAuthor, postId));
        _producer.Flush();
        return postId;
    }

    /// <summary>One malformed record, cycling through the kinds producers get wrong.</summary>
    public void ProduceMalformed()
    {
        MalformedIn++;
        var kind = _malformedKind++ % 6;
        var (topic, key, value) = kind switch
        {
            0 => (FeedTopics.Posts, "act0", Encoding.UTF8.GetBytes("not a protobuf {")),
            1 => (FeedTopics.Posts, "act0", new PostEvent { PostId = "bad id with spaces", AuthorId = "act0", Action = PostAction.Created, Body = "x" }.ToByteArray()),
            2 => (FeedTopics.Posts, "act0", new PostEvent { PostId = "p-empty-body", AuthorId = "act0", Action = PostAction.Created, Body = "" }.ToByteArray()),
            3 => (FeedTopics.Follows, "u0", new FollowEvent { FollowerId = "u0", FolloweeId = "u0", Action = FollowAction.Follow }.ToByteArray()),
            4 => (FeedTopics.Follows, "u0", new FollowEvent { FollowerId = "u1", FolloweeId = "act0", Action = FollowAction.Follow }.ToByteArray()),
            _ => (FeedTopics.Posts, "act0", Array.Empty<byte>()),
        };
        _producer.Produce(topic, new Message<string, byte[]> { Key = key, Value = value }, Delivered);
    }

    /// <summary>Records held by the input topics: with an idempotent producer, exactly <see cref="Acknowledged"/>.</summary>
    public static long InputRecords(string bootstrapServers)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).SetLogHandler((_, _) => { }).Build();
        return TopicOffsets.EndOffsetSum(admin, [FeedTopics.Posts, FeedTopics.Follows], TimeSpan.FromSeconds(10));
    }

    public void Flush() => _producer.Flush();

    public void Dispose() => _producer.Dispose();

    private void Follow(string user, string author)
    {
        _follows.Add((user, author));
        Produce(FeedTopics.Follows, user, new FollowEvent { EventId = $"f-{user}-{author}", FollowerId = user, FolloweeId = author, Action = FollowAction.Follow, OccurredAtMs = Now() });
        Model.Apply(new FeedInput.Follow(user, author));
    }

    private void Post(string author)
    {
        var postId = string.Create(CultureInfo.InvariantCulture, $"{author}-p{_nextPost++}");
        Produce(FeedTopics.Posts, author, new PostEvent { PostId = postId, AuthorId = author, Action = PostAction.Created, Body = _body, CreatedAtMs = Now(), OccurredAtMs = Now() });
        Model.Apply(new FeedInput.Post(author, postId));
        if (!_livePosts.TryGetValue(author, out var posts))
        {
            _livePosts[author] = posts = [];
        }

        posts.Add(postId);
    }

    private void Produce(string topic, string key, IMessage value)
    {
        RecordsIn++;
        _producer.Produce(topic, new Message<string, byte[]> { Key = key, Value = value.ToByteArray() }, Delivered);
    }

    /// <summary>Counts records the broker never acknowledged: the model assumed them, so the run would be invalid.</summary>
    private void Delivered(DeliveryReport<string, byte[]> report)
    {
        Interlocked.Increment(ref report.Error.IsError ? ref _produceFailures : ref _acknowledged);
    }

    /// <summary>On stderr, so a run that goes wrong shows what the battery's own producer went through (expected during broker faults).</summary>
    private static void ReportProducerError(Error error) =>
        Console.Error.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} workload producer: {error.Code}{(error.IsFatal ? " (fatal)" : "")}: {error.Reason}");

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
}
