using Confluent.Kafka;
using Feed.V1;
using Pipeline.Kafka;
using Pipeline.Processor.Topology;

namespace Pipeline.UnitTests.Processor;

public sealed class FeedTopologyTests
{
    /// <summary>The stall watchdog judges an instance by the input partitions its tasks read: the gates report them.</summary>
    [Fact]
    public void InputGates_ReportThePartitionsTheirTasksRead_UntilTheyClose()
    {
        var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.Post("bob", "p1");

        var (open, version) = topology.Metrics.OwnedInputs();
        Assert.Equal([new TopicPartition(FeedTopics.Follows, 0), new TopicPartition(FeedTopics.Posts, 0)], open.OrderBy(p => p.Topic, StringComparer.Ordinal));

        var metrics = topology.Metrics;
        topology.Dispose();
        var (closed, versionAfter) = metrics.OwnedInputs();
        Assert.Empty(closed);
        Assert.NotEqual(version, versionAfter);
    }

    [Fact]
    public void Post_ReachesEachFollowerOnce()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.Follow("carol", "bob");

        topology.Post("bob", "p1", "first!");

        var updates = topology.ReadUpdates();
        Assert.Equal(["alice", "carol"], updates.Select(u => u.Message.Key).Order());
        Assert.All(updates, u =>
        {
            Assert.Equal(u.Message.Key, u.Message.Value.RecipientId);
            Assert.Equal(FeedUpdateKind.Added, u.Message.Value.Kind);
            Assert.Equal(FeedCause.Live, u.Message.Value.Cause);
            Assert.Equal("p1", u.Message.Value.Post.PostId);
            Assert.Equal("bob", u.Message.Value.Post.AuthorId);
            Assert.Equal("first!", u.Message.Value.Post.Body);
        });
    }

    /// <summary>
    /// A post's fan-out travels as few records as the partitions and the per-record bound allow (the test driver
    /// has one partition): 1,201 followers are 500 + 500 + 201 recipients, each record keyed by its first, and
    /// every follower still gets exactly one update.
    /// </summary>
    [Fact]
    public void Post_FanOutIsGroupedPerPartition_BoundedPerRecord_AndReachesEveryoneOnce()
    {
        using var topology = new TopologyHarness();
        var followers = Enumerable.Range(0, 1_201).Select(i => $"user-{i:D4}").ToList();
        foreach (var follower in followers)
        {
            topology.Follow(follower, "star");
        }

        topology.ReadCommands(); // follows emit nothing, but start from an empty read anyway
        topology.Post("star", "p1");

        var commands = topology.ReadCommands();
        Assert.Equal([AuthorStage.MaxRecipientsPerCommand, AuthorStage.MaxRecipientsPerCommand, 201], commands.Select(c => c.Message.Value.RecipientIds.Count));
        Assert.All(commands, c =>
        {
            Assert.Equal(c.Message.Value.RecipientIds[0], c.Message.Key);
            Assert.Equal("", c.Message.Value.RecipientId);
            Assert.Equal(FeedCommandKind.Add, c.Message.Value.Kind);
        });
        Assert.Equal(followers, commands.SelectMany(c => c.Message.Value.RecipientIds).Order(StringComparer.Ordinal));

        var updates = topology.ReadUpdates();
        Assert.Equal(followers, updates.Select(u => u.Message.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Post_NonFollowersGetNothing()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");

        // "bobby" shares bob's prefix: a careless prefix scan would hand bob's posts to bobby's followers.
        topology.Follow("dave", "bobby");
        topology.Follow("erin", "carol");

        topology.Post("bob", "p1");

        var updates = topology.ReadUpdates();
        Assert.Equal(["alice"], updates.Select(u => u.Message.Key));
    }

    [Fact]
    public void Unfollow_RetractsAuthorsPostsAndLaterPostsDoNotArrive()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.Follow("carol", "bob");
        topology.Post("bob", "p1");

        topology.Unfollow("alice", "bob");
        topology.Post("bob", "p2");

        var updates = topology.ReadUpdates();
        Assert.Equal(
            [("alice", "p1", FeedUpdateKind.Added), ("alice", "p1", FeedUpdateKind.Removed), ("carol", "p1", FeedUpdateKind.Added), ("carol", "p2", FeedUpdateKind.Added)],
            updates.Select(u => (u.Message.Key, u.Message.Value.Post.PostId, u.Message.Value.Kind)).OrderBy(u => u.Key, StringComparer.Ordinal));
        Assert.Equal(FeedCause.Unfollow, updates.Single(u => u.Message.Value.Kind == FeedUpdateKind.Removed).Message.Value.Cause);
    }

    [Fact]
    public void ManyPosts_ArriveInTheAuthorsOrder()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        var posted = Enumerable.Range(0, 200).Select(i => $"p{i:D3}").ToList();

        foreach (var id in posted)
        {
            topology.Post("bob", id);
        }

        var received = topology.ReadUpdates().Select(u => u.Message.Value.Post.PostId).ToList();
        Assert.Equal(posted, received);
    }

    [Fact]
    public void Posts_CountedInMetrics()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.Follow("carol", "bob");
        topology.Post("bob", "p1");
        topology.Post("bob", "p2");

        Assert.Equal(4, topology.ReadUpdates().Count);
        Assert.Equal(2, topology.Metrics.PostsIn);
        Assert.Equal(2, topology.Metrics.FollowsIn);
        Assert.Equal(4, topology.Metrics.FeedUpdatesOut);
    }
}
