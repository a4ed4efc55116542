using System.Diagnostics.CodeAnalysis;
using BenchmarkDotNet.Attributes;
using Feed.V1;
using Microsoft.Extensions.Options;
using Pipeline.StreamEdge;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.MicroBenchmarks;

/// <summary>
/// FeedReplica.Apply: the edge's RocksDB write of one added update (reads of meta and the held key, one write
/// batch), in a temporary directory with the default feed size (800) and resume window (1,000).
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
[SuppressMessage("Reliability", "CA1001", Justification = "BenchmarkDotNet owns the lifetime: [GlobalCleanup] disposes the replica.")]
public class FeedReplicaBenchmarks
{
    private const int Partition = 3;

    // Coprime counts: (user, post) pairs do not repeat for Users × Posts operations, so every apply adds an entry.
    private const int Users = 10_000;
    private const int Posts = 1_009;

    private readonly string[] _users = [.. Enumerable.Range(1, Users).Select(Samples.UserId)];
    private readonly Post[] _posts = [.. Enumerable.Range(1, Posts).Select(Samples.Post)];
    private readonly FeedUpdate _update = Samples.FeedUpdate(Samples.Recipient, Samples.Post());
    private FeedEvent[] _events = [];
    private string _stateDir = "";
    private FeedReplica _replica = null!;
    private long _offset;

    [GlobalSetup]
    public void Setup()
    {
        _stateDir = Path.Combine(Path.GetTempPath(), "feed-micro-benchmarks", Guid.NewGuid().ToString("N"));
        _replica = new FeedReplica(Options.Create(new EdgeOptions { StateDir = _stateDir }));
        _events = [.. _posts.Select(post => FeedEvents.ToFeedEvent(Samples.FeedUpdate(Samples.Recipient, post)))];

        // One user already at the feed cap and the resume window, for ApplyToFullFeed.
        var options = new EdgeOptions();
        for (var i = 0; i < Math.Max(options.FeedSize, options.ResumeWindow); i++)
        {
            ApplyToFullFeed();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _replica.Dispose();
        Directory.Delete(_stateDir, recursive: true);
    }

    /// <summary>An added post for one of 10,000 users whose feeds are below the cap: no trimming.</summary>
    [Benchmark(Baseline = true)]
    public long ApplyToGrowingFeed()
    {
        var offset = ++_offset;
        var post = (int)(offset % Posts);
        _update.RecipientId = _users[offset % Users];
        _update.Post = _posts[post];
        _replica.Apply(Partition, offset, _update, _events[post]);
        return offset;
    }

    /// <summary>
    /// An added post for one user at the cap and the resume window: each apply also finds and deletes the oldest
    /// entry (a get at the feed's floor) and, one chunk in every <see cref="FeedReplica.LogTrimChunk"/> applies, the
    /// oldest logged updates (an iterator seek).
    /// </summary>
    [Benchmark]
    public long ApplyToFullFeed()
    {
        var offset = ++_offset;
        var post = (int)(offset % Posts);
        _update.RecipientId = Samples.Recipient;
        _update.Post = _posts[post];
        _replica.Apply(Partition, offset, _update, _events[post]);
        return offset;
    }
}
