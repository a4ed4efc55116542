using System.Text;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Pipeline.Kafka;

namespace Pipeline.UnitTests.Processor;

public sealed class DeadLetterTests
{
    public static TheoryData<string, byte[]?, byte[]?, string> BadRecords => new()
    {
        { FeedTopics.Posts, Utf8("bob"), [0xff, 0xff, 0xff], "not a valid PostEvent" },
        { FeedTopics.Posts, Utf8("bob"), null, "no value" },
        { FeedTopics.Posts, Utf8("mallory"), Post("bob", "p9", "hi").ToByteArray(), "does not match author_id" },
        { FeedTopics.Posts, Utf8("bob"), Post("bob", "", "hi").ToByteArray(), "post_id is required" },
        { FeedTopics.Posts, Utf8("bob"), Post("bob", "p9", new string('x', 5000)).ToByteArray(), "limit is 4096" },
        { FeedTopics.Posts, Utf8("bob"), new PostEvent { PostId = "p9", AuthorId = "bob", Action = (PostAction)42 }.ToByteArray(), "unknown post action" },
        { FeedTopics.Follows, Utf8("alice"), [0x0a, 0xff], "not a valid FollowEvent" },
        { FeedTopics.Follows, Utf8("alice"), Follow("alice", "alice").ToByteArray(), "cannot follow themselves" },
        { FeedTopics.Follows, Utf8("alice"), Follow("alice", "b|b").ToByteArray(), "followee_id contains '|'" },
        { FeedTopics.Follows, null, Follow("alice", "bob").ToByteArray(), "no key" },
    };

    [Theory]
    [MemberData(nameof(BadRecords))]
    public void BadRecord_GoesToDeadLettersWithReasonAndSource_ValidNeighboursStillProcessed(string topic, byte[]? key, byte[]? value, string reason)
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.Post("bob", "before");

        topology.SendRaw(topic, key, value, new Headers { { "trace-id", Utf8("t-1") } });
        topology.Post("bob", "after");

        var deadLetters = topology.ReadDeadLetters();
        var deadLetter = Assert.Single(deadLetters);
        Assert.Equal(key, deadLetter.Message.Key);
        Assert.Equal(value, deadLetter.Message.Value);
        var headers = deadLetter.Message.Headers.ToDictionary(h => h.Key, h => Encoding.UTF8.GetString(h.GetValueBytes()));
        Assert.Equal(topic, headers[DeadLetterHeaders.SourceTopic]);
        Assert.Equal("0", headers[DeadLetterHeaders.SourcePartition]);
        Assert.True(long.TryParse(headers[DeadLetterHeaders.SourceOffset], out _));
        Assert.Contains(reason, headers[DeadLetterHeaders.Error], StringComparison.Ordinal);
        Assert.Equal("t-1", headers["trace-id"]);

        Assert.Equal(["before", "after"], topology.ReadUpdates().Select(u => u.Message.Value.Post.PostId));
        Assert.Equal(1, topology.Metrics.DeadLetters);
    }

    [Fact]
    public void FeedUpdates_DoNotCarryInputHeaders()
    {
        using var topology = new TopologyHarness();
        topology.Follow("alice", "bob");
        topology.SendRaw(FeedTopics.Posts, Utf8("bob"), Post("bob", "p1", "hi").ToByteArray(), new Headers { { "trace-id", Utf8("t-1") } });

        var update = Assert.Single(topology.ReadUpdates());
        Assert.Empty(update.Message.Headers ?? []);
    }

    private static PostEvent Post(string author, string id, string body) =>
        new() { PostId = id, AuthorId = author, Action = PostAction.Created, Body = body, CreatedAtMs = 1, OccurredAtMs = 1 };

    private static FollowEvent Follow(string follower, string followee) =>
        new() { EventId = "e1", FollowerId = follower, FolloweeId = followee, Action = FollowAction.Follow, OccurredAtMs = 1 };

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
}
