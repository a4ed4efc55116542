using System.Diagnostics.CodeAnalysis;
using BenchmarkDotNet.Attributes;

namespace Pipeline.MicroBenchmarks;

/// <summary>
/// For scale against <see cref="FollowerFanOutBenchmarks"/>: one post through the whole real topology in
/// TopologyTestDriver (gate, author stage, repartition, recipient stage with its three stores, feed.updates),
/// including reading the updates back. The driver commits, and so flushes every store, after each input record,
/// which the deployed processor does only every Processor:CommitIntervalMs.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
[SuppressMessage("Reliability", "CA1001", Justification = "BenchmarkDotNet owns the lifetime: [GlobalCleanup] disposes the rig.")]
public class TopologyPostBenchmarks
{
    private FeedTopologyRig _rig = null!;
    private int _nextPost;

    [Params(20, 1_000)]
    public int Followers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _rig = new FeedTopologyRig();
        _rig.AddFollowers(Samples.Author, Followers);
        var updates = PostThroughTopology();
        if (updates != Followers)
        {
            throw new InvalidOperationException($"one post produced {updates} feed updates, expected {Followers}");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _rig.Dispose();

    /// <summary>A new post id every time: the author stage's ledger drops a repeated one.</summary>
    [Benchmark]
    public int PostThroughTopology() => _rig.Post(Samples.PostEvent(++_nextPost));
}
