using System.Text;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Pipeline.Kafka;
using Pipeline.Processor;
using Pipeline.Processor.Topology;
using Streamiz.Kafka.Net.Mock;
using Streamiz.Kafka.Net.SerDes;
using Streamiz.Kafka.Net.State;

namespace Pipeline.MicroBenchmarks;

/// <summary>
/// The real feed topology (FeedTopology.Build, real RocksDB stores in a temporary state directory) in Streamiz's
/// TopologyTestDriver, as the unit tests run it. Gives the benchmarks the processor's own follower-index store
/// (the same Streamiz store stack and serdes that AuthorStage reads) and a way to push a post through both stages.
/// </summary>
internal sealed class FeedTopologyRig : IDisposable
{
    private readonly string _stateDir;
    private readonly TopologyTestDriver _driver;
    private readonly TestInputTopic<byte[], byte[]> _follows;
    private readonly TestInputTopic<byte[], byte[]> _posts;
    private readonly TestOutputTopic<byte[], byte[]> _updates;

    public FeedTopologyRig()
    {
        _stateDir = Path.Combine(Path.GetTempPath(), "feed-micro-benchmarks", Guid.NewGuid().ToString("N"));
        // Streamiz's test driver gives every topic one partition; the author stage groups recipients by this count.
        var options = new ProcessorOptions { ApplicationId = "feed-micro-" + Guid.NewGuid().ToString("N"), StateDir = _stateDir, TopicPartitions = 1 };
        var config = FeedProcessorService.StreamConfigFor(options, new ClientConfig { BootstrapServers = "unused:9092" });
        _driver = new TopologyTestDriver(FeedTopology.Build(options, new ProcessorMetrics(), skipRedeliveries: false), config);

        var bytes = new ByteArraySerDes();
        _follows = _driver.CreateInputTopic(FeedTopics.Follows, bytes, bytes);
        _posts = _driver.CreateInputTopic(FeedTopics.Posts, bytes, bytes);
        _updates = _driver.CreateOutputTopic(FeedTopics.FeedUpdates, TimeSpan.FromSeconds(5), bytes, bytes);
        FollowerIndex = _driver.GetKeyValueStore<string, long>(StoreNames.FollowerIndex)
            ?? throw new InvalidOperationException($"the topology has no {StoreNames.FollowerIndex} store");
    }

    /// <summary>The author stage's follower index: "{author}|{follower}" → follow time.</summary>
    public IReadOnlyKeyValueStore<string, long> FollowerIndex { get; }

    /// <summary>Makes <paramref name="count"/> users ("user-1"…, never the author: the gate rejects self-follows) follow <paramref name="author"/>.</summary>
    public void AddFollowers(string author, int count)
    {
        var follows = Enumerable.Range(1, count + 1)
            .Select(Samples.UserId)
            .Where(follower => follower != author)
            .Take(count)
            .Select(follower =>
            {
                var follow = new FollowEvent
                {
                    EventId = "follow-" + follower,
                    FollowerId = follower,
                    FolloweeId = author,
                    Action = FollowAction.Follow,
                    OccurredAtMs = Samples.OccurredAtMs,
                };
                return new KeyValuePair<byte[], byte[]>(Encoding.UTF8.GetBytes(follower), follow.ToByteArray());
            });
        _follows.PipeInputs(follows);
    }

    /// <summary>Pipes one post through both stages and returns how many feed.updates records it produced.</summary>
    public int Post(PostEvent post)
    {
        _posts.PipeInput(Encoding.UTF8.GetBytes(post.AuthorId), post.ToByteArray());
        return _updates.ReadKeyValueList().Count();
    }

    public int CountFollowers(string author)
    {
        var count = 0;
        using var range = FollowerIndex.Range(AuthorKeys.Start(author), AuthorKeys.End(author));
        while (range.MoveNext())
        {
            count++;
        }

        return count;
    }

    public void Dispose()
    {
        _driver.Dispose();
        try
        {
            Directory.Delete(_stateDir, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temporary directory is harmless; the benchmark result is what matters.
        }
    }
}
