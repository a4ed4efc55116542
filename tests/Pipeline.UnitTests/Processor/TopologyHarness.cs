using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Pipeline.Kafka;
using Pipeline.Processor;
using Pipeline.Processor.Topology;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.Mock;
using Streamiz.Kafka.Net.Mock.Sync;
using Streamiz.Kafka.Net.SerDes;

namespace Pipeline.UnitTests.Processor;

/// <summary>The real feed topology in Streamiz's TopologyTestDriver, with typed helpers to drive it.</summary>
internal sealed class TopologyHarness : IDisposable
{
    private readonly TopologyTestDriver _driver;
    private readonly string _stateDir;
    private readonly TestInputTopic<byte[], byte[]> _follows;
    private readonly TestInputTopic<byte[], byte[]> _posts;
    private readonly TestOutputTopic<string, FeedUpdate> _updates;
    private readonly TestOutputTopic<byte[], byte[]> _deadLetters;
    private readonly TestOutputTopic<string, FeedCommand> _commands;
    private long _clock = 1_700_000_000_000;

    public TopologyHarness(ProcessorOptions? options = null)
    {
        options ??= new ProcessorOptions();
        _stateDir = Path.Combine(Path.GetTempPath(), "feed-topology-tests", Guid.NewGuid().ToString("N"));
        options.ApplicationId = $"feed-test-{Guid.NewGuid():N}";
        options.StateDir = _stateDir;
        // Streamiz's test driver gives every topic one partition; the author stage groups recipients by this count.
        options.TopicPartitions = 1;
        Metrics = new ProcessorMetrics();
        var config = FeedProcessorService.StreamConfigFor(options, new ClientConfig { BootstrapServers = "unused:9092" });
        // The test driver's offsets are not positions (see skipRedeliveries); SourcePositionsTests cover the guard.
        _driver = new TopologyTestDriver(FeedTopology.Build(options, Metrics, skipRedeliveries: false), config);

        var bytes = new ByteArraySerDes();
        _follows = _driver.CreateInputTopic(FeedTopics.Follows, bytes, bytes);
        _posts = _driver.CreateInputTopic(FeedTopics.Posts, bytes, bytes);
        _updates = _driver.CreateOutputTopic(FeedTopics.FeedUpdates, TimeSpan.FromSeconds(5), new StringSerDes(), new ProtobufSerDes<FeedUpdate>());
        _deadLetters = _driver.CreateOutputTopic(FeedTopics.DeadLetters, TimeSpan.FromSeconds(5), bytes, bytes);
        _commands = _driver.CreateOutputTopic($"{options.ApplicationId}-{FeedTopology.UpdatesByRecipient}-repartition", TimeSpan.FromSeconds(5), new StringSerDes(), new ProtobufSerDes<FeedCommand>());
    }

    /// <summary>The records the author stage wrote to the recipient repartition topic (the test driver keeps them).</summary>
    public List<ConsumeResult<string, FeedCommand>> ReadCommands() => [.. _commands.ReadKeyValueList()];

    public ProcessorMetrics Metrics { get; }

    /// <summary>The post ids the author stage keeps for backfill, oldest first.</summary>
    public List<string> RecentPosts(string author)
    {
        using var posts = _driver.GetKeyValueStore<string, Post>(StoreNames.RecentPosts).Range(AuthorKeys.Start(author), AuthorKeys.End(author));
        var ids = new List<string>();
        while (posts.MoveNext())
        {
            ids.Add(posts.Current!.Value.Value.PostId);
        }

        return ids;
    }

    /// <summary>The recipient stage's stored feed of <paramref name="user"/>: entries oldest first, and held keys.</summary>
    public (List<string> Entries, List<string> Held) StoredFeed(string user)
    {
        var entries = new List<string>();
        using (var stored = _driver.GetKeyValueStore<string, Post>(StoreNames.FeedEntries).Range(user + "|", RecipientKeys.EntryEnd(user)))
        {
            while (stored.MoveNext())
            {
                entries.Add(stored.Current!.Value.Value.PostId);
            }
        }

        var held = new List<string>();
        using (var index = _driver.GetKeyValueStore<string, long>(StoreNames.FeedIndex).Range(user + "|", user + "}"))
        {
            while (index.MoveNext())
            {
                held.Add(index.Current!.Value.Key[(user.Length + 1)..]);
            }
        }

        return (entries, held);
    }

    public void Follow(string follower, string followee) => SendFollow(follower, followee, FollowAction.Follow);

    public void Unfollow(string follower, string followee) => SendFollow(follower, followee, FollowAction.Unfollow);

    public void Block(string follower, string followee) => SendFollow(follower, followee, FollowAction.Block);

    public void Delete(string author, string postId) =>
        SendPost(new PostEvent { PostId = postId, AuthorId = author, Action = PostAction.Deleted, OccurredAtMs = ++_clock });

    public void Post(string author, string postId, string body = "hello") =>
        SendPost(new PostEvent { PostId = postId, AuthorId = author, Action = PostAction.Created, Body = body, CreatedAtMs = ++_clock, OccurredAtMs = _clock });

    public void SendPost(PostEvent post) => _posts.PipeInput(Utf8(post.AuthorId), post.ToByteArray());

    public void SendRaw(string topic, byte[]? key, byte[]? value, Headers? headers = null) =>
        (topic == FeedTopics.Follows ? _follows : _posts).PipeInput(key!, value!, headers);

    public List<ConsumeResult<string, FeedUpdate>> ReadUpdates() => [.. _updates.ReadKeyValueList()];

    /// <summary>Every user's feed as a subscriber replaying feed.updates would hold it: (author, post id), oldest first.</summary>
    public Dictionary<string, List<(string Author, string PostId)>> ReplayFeeds(int feedSize) => Replay(ReadUpdates(), feedSize);

    public static Dictionary<string, List<(string Author, string PostId)>> Replay(IEnumerable<ConsumeResult<string, FeedUpdate>> updates, int feedSize)
    {
        var feeds = new Dictionary<string, List<(string Author, string PostId)>>(StringComparer.Ordinal);
        foreach (var update in updates)
        {
            var feed = feeds.TryGetValue(update.Message.Key, out var existing) ? existing : feeds[update.Message.Key] = [];
            FeedModel.Replay(feed, update.Message.Value.Kind == FeedUpdateKind.Added, (update.Message.Value.Post.AuthorId, update.Message.Value.Post.PostId), feedSize);
        }

        return feeds;
    }

    public List<ConsumeResult<byte[], byte[]>> ReadDeadLetters() => [.. _deadLetters.ReadKeyValueList()];

    public void Dispose()
    {
        _driver.Dispose();
        Metrics.Dispose();
        if (Directory.Exists(_stateDir))
        {
            Directory.Delete(_stateDir, recursive: true);
        }
    }

    private void SendFollow(string follower, string followee, FollowAction action) =>
        _follows.PipeInput(Utf8(follower), new FollowEvent
        {
            EventId = Guid.NewGuid().ToString("N"),
            FollowerId = follower,
            FolloweeId = followee,
            Action = action,
            OccurredAtMs = ++_clock,
        }.ToByteArray());

    private static byte[] Utf8(string text) => System.Text.Encoding.UTF8.GetBytes(text);
}
