using System.Diagnostics.CodeAnalysis;
using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using Feed.V1;
using Pipeline.Kafka;
using Pipeline.Processor.Topology;

namespace Pipeline.MicroBenchmarks;

/// <summary>
/// The author stage's fan-out access pattern, on the processor's real follower-index store (Streamiz's RocksDB
/// store behind the same serdes, keys from <see cref="AuthorKeys"/>): one range scan of an author's followers, then
/// per follower the record the stage emits. Each variant adds one step, so the differences price each step.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
[SuppressMessage("Reliability", "CA1001", Justification = "BenchmarkDotNet owns the lifetime: [GlobalCleanup] disposes the rig.")]
public class FollowerFanOutBenchmarks
{
    private static readonly SerializationContext CommandContext = new(MessageComponentType.Value, "feed-processor-updates-by-recipient-repartition");
    private static readonly SerializationContext UpdateContext = new(MessageComponentType.Value, FeedTopics.FeedUpdates);

    private readonly ProtobufSerDes<FeedCommand> _commandSerDes = new();
    private readonly ProtobufSerDes<FeedUpdate> _updateSerDes = new();
    private readonly Post _post = Samples.Post();
    private FeedTopologyRig _rig = null!;

    [Params(20, 1_000, 100_000)]
    public int Followers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _rig = new FeedTopologyRig();
        _rig.AddFollowers(Samples.Author, Followers);
        if (_rig.CountFollowers(Samples.Author) != Followers)
        {
            throw new InvalidOperationException($"expected {Followers} followers in the index, found {_rig.CountFollowers(Samples.Author)}");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _rig.Dispose();

    /// <summary>Range scan only: iterate "{author}|" … "{author}}" and cut each follower id out of its key.</summary>
    [Benchmark(Baseline = true)]
    public int Scan()
    {
        var total = 0;
        using var followers = _rig.FollowerIndex.Range(AuthorKeys.Start(Samples.Author), AuthorKeys.End(Samples.Author));
        while (followers.MoveNext())
        {
            total += AuthorKeys.MemberOf(followers.Current!.Value.Key, Samples.Author).Length;
        }

        return total;
    }

    /// <summary>Scan + what AuthorStage.Emit builds per follower (a FeedCommand) and its repartition serdes.</summary>
    [Benchmark]
    public long ScanEmitCommand()
    {
        long bytes = 0;
        using var followers = _rig.FollowerIndex.Range(AuthorKeys.Start(Samples.Author), AuthorKeys.End(Samples.Author));
        while (followers.MoveNext())
        {
            var recipient = AuthorKeys.MemberOf(followers.Current!.Value.Key, Samples.Author);
            var command = new FeedCommand { RecipientId = recipient, Kind = FeedCommandKind.Add, Cause = FeedCause.Live, Post = _post, SourceOccurredAtMs = Samples.OccurredAtMs };
            bytes += _commandSerDes.Serialize(command, CommandContext).Length;
        }

        return bytes;
    }

    /// <summary>Scan + the FeedUpdate the recipient stage emits to feed.updates per follower, serialized.</summary>
    [Benchmark]
    public long ScanEmitUpdate()
    {
        long bytes = 0;
        using var followers = _rig.FollowerIndex.Range(AuthorKeys.Start(Samples.Author), AuthorKeys.End(Samples.Author));
        while (followers.MoveNext())
        {
            var recipient = AuthorKeys.MemberOf(followers.Current!.Value.Key, Samples.Author);
            var update = new FeedUpdate { RecipientId = recipient, Kind = FeedUpdateKind.Added, Cause = FeedCause.Live, Post = _post, SourceOccurredAtMs = Samples.OccurredAtMs };
            bytes += _updateSerDes.Serialize(update, UpdateContext).Length;
        }

        return bytes;
    }
}
