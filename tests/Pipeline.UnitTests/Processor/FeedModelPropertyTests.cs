using CsCheck;
using Pipeline.Processor;

namespace Pipeline.UnitTests.Processor;

public sealed class FeedModelPropertyTests
{
    // Few users and post ids, so generated scenarios are dense with duplicates, refollows, deletes of posts that
    // are held, trimmed or never seen, and feeds that overflow their cap.
    private static readonly string[] Users = ["ann", "bob", "bobby", "cat", "dan"];
    private static readonly Gen<string> User = Gen.Int[0, Users.Length - 1].Select(i => Users[i]);
    private static readonly Gen<string> PostId = Gen.Int[0, 11].Select(i => $"p{i}");

    private static readonly Gen<FeedInput> Input = Gen.Frequency(
        (4, Gen.Select(User, User).Where((a, b) => a != b).Select((a, b) => (FeedInput)new FeedInput.Follow(a, b))),
        (2, Gen.Select(User, User).Where((a, b) => a != b).Select((a, b) => (FeedInput)new FeedInput.Unfollow(a, b))),
        (1, Gen.Select(User, User).Where((a, b) => a != b).Select((a, b) => (FeedInput)new FeedInput.Block(a, b))),
        (6, Gen.Select(User, PostId).Select((a, p) => (FeedInput)new FeedInput.Post(a, p))),
        (2, Gen.Select(User, PostId).Select((a, p) => (FeedInput)new FeedInput.Delete(a, p))));

    [Fact]
    public void AnyInterleaving_EveryFeedEqualsTheReferenceModel()
    {
        // One driver per scenario is the costly part (RocksDB stores), so CI runs 300 scenarios of up to 60 events;
        // FEED_MODEL_ITERATIONS=3000 runs the full check. CsCheck shrinks any failure to a minimal event list.
        Input.Array[1, 60].Sample(
            inputs =>
            {
                const int backfillSize = 3, feedSize = 5;
                var model = new FeedModel(backfillSize, feedSize);
                using var topology = new TopologyHarness(new ProcessorOptions { BackfillSize = backfillSize, FeedSize = feedSize });
                foreach (var input in inputs)
                {
                    model.Apply(input);
                    Send(topology, input);
                }

                var actual = topology.ReplayFeeds(feedSize);
                foreach (var user in model.Feeds.Keys.Union(actual.Keys))
                {
                    var expected = model.Feeds.GetValueOrDefault(user, []);
                    var got = actual.GetValueOrDefault(user, []);
                    if (!expected.SequenceEqual(got))
                    {
                        return false;
                    }
                }

                return true;
            },
            iter: int.TryParse(Environment.GetEnvironmentVariable("FEED_MODEL_ITERATIONS"), out var iterations) ? iterations : 300,
            threads: 1,
            print: inputs => string.Join(", ", inputs.Select(i => i.ToString())));
    }

    private static void Send(TopologyHarness topology, FeedInput input)
    {
        switch (input)
        {
            case FeedInput.Follow(var follower, var author):
                topology.Follow(follower, author);
                break;
            case FeedInput.Unfollow(var follower, var author):
                topology.Unfollow(follower, author);
                break;
            case FeedInput.Block(var follower, var author):
                topology.Block(follower, author);
                break;
            case FeedInput.Post(var author, var postId):
                topology.Post(author, postId);
                break;
            case FeedInput.Delete(var author, var postId):
                topology.Delete(author, postId);
                break;
        }
    }
}
