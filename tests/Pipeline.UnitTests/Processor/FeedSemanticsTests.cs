using Feed.V1;
using Pipeline.Processor;

namespace Pipeline.UnitTests.Processor;

public sealed class FeedSemanticsTests
{
    [Fact]
    public void Follow_BackfillsAuthorsNewestPostsInPostOrder()
    {
        using var topology = new TopologyHarness(new ProcessorOptions { BackfillSize = 3 });
        foreach (var id in new[] { "p1", "p2", "p3", "p4", "p5" })
        {
            topology.Post("bob", id);
        }

        topology.Follow("alice", "bob");

        var updates = topology.ReadUpdates();
        Assert.Equal(["p3", "p4", "p5"], updates.Select(u => u.Message.Value.Post.PostId));
        Assert.All(updates, u => Assert.Equal(FeedCause.Backfill, u.Message.Value.Cause));
    }

    [Fact]
    public void RecentPosts_KeepTheNewestBackfillSize_ThroughDeletes()
    {
        using var topology = new TopologyHarness(new ProcessorOptions { BackfillSize = 3 });
        for (var i = 1; i <= 12; i++)
        {
            topology.Post("bob", $"p{i}");
        }

        Assert.Equal(["p10", "p11", "p12"], topology.RecentPosts("bob"));

        // A delete leaves room: the next post trims nothing, the one after trims the oldest.
        topology.Delete("bob", "p11");
        topology.Post("bob", "p13");
        Assert.Equal(["p10", "p12", "p13"], topology.RecentPosts("bob"));
        topology.Post("bob", "p14");
        Assert.Equal(["p12", "p13", "p14"], topology.RecentPosts("bob"));

        topology.Follow("alice", "bob");
        Assert.Equal(["p12", "p13", "p14"], topology.ReadUpdates().Select(u => u.Message.Value.Post.PostId));
    }

    [Fact]
    public void DuplicateFollow_DoesNotBackfillAgain()
    {
        using var topology = new TopologyHarness();
        topology.Post("bob", "p1");
        topology.Follow("alice", "bob");
        topology.Follow("alice", "bob");

        Assert.Single(topology.ReadUpdates());
    }

    [Fact]
    public void DuplicatePost_IsDeliveredOnce()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.Post("bob", "p1");
        topology.Post("bob", "p1");

        Assert.Single(topology.ReadUpdates());
    }

    [Fact]
    public void DeletedPost_IsRemovedFromEveryFeedThatHoldsIt_AndNotBackfilled()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.Follow("carol", "bob");
        topology.Post("bob", "p1");
        topology.Post("bob", "p2");

        topology.Delete("bob", "p1");
        topology.Follow("dave", "bob");

        var feeds = topology.ReplayFeeds(800);
        Assert.Equal([("bob", "p2")], feeds["alice"]);
        Assert.Equal([("bob", "p2")], feeds["carol"]);
        Assert.Equal([("bob", "p2")], feeds["dave"]);
    }

    [Fact]
    public void DeletedPost_RemovalCarriesTheDeleteCause()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.Post("bob", "p1");
        topology.Delete("bob", "p1");

        var removal = topology.ReadUpdates()[^1].Message.Value;
        Assert.Equal((FeedUpdateKind.Removed, FeedCause.PostDeleted, "p1"), (removal.Kind, removal.Cause, removal.Post.PostId));
    }

    [Fact]
    public void CreateRedeliveredAfterDelete_StaysDeleted()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.Post("bob", "p1");
        topology.Delete("bob", "p1");
        topology.Post("bob", "p1");

        Assert.Empty(topology.ReplayFeeds(800)["alice"]);
    }

    [Fact]
    public void Block_RetractsWithBlockCause()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.Post("bob", "p1");
        topology.Block("alice", "bob");
        topology.Post("bob", "p2");

        var updates = topology.ReadUpdates();
        Assert.Equal([FeedUpdateKind.Added, FeedUpdateKind.Removed], updates.Select(u => u.Message.Value.Kind));
        Assert.Equal(FeedCause.Block, updates[1].Message.Value.Cause);
    }

    [Fact]
    public void StoredFeed_KeepsTheNewestEntries()
    {
        using var topology = new TopologyHarness(new ProcessorOptions { FeedSize = 3 });
        topology.Follow("alice", "bob");
        foreach (var id in new[] { "p1", "p2", "p3", "p4", "p5" })
        {
            topology.Post("bob", id);
        }

        // p1 and p2 fell out of the stored feed, so deleting p1 is a no-op for alice; p4 is removed.
        topology.Delete("bob", "p1");
        topology.Delete("bob", "p4");

        var updates = topology.ReadUpdates();
        Assert.Equal(["p4"], updates.Where(u => u.Message.Value.Kind == FeedUpdateKind.Removed).Select(u => u.Message.Value.Post.PostId));
        Assert.Equal([("bob", "p3"), ("bob", "p5")], TopologyHarness.Replay(updates, 3)["alice"]);

        // The entries that left, pushed out or removed, are gone from the stores too, with their held keys.
        var (entries, held) = topology.StoredFeed("alice");
        Assert.Equal(["p3", "p5"], entries);
        Assert.Equal(["bob|p3", "bob|p5"], held);
    }
}
