using System.Globalization;
using CsCheck;
using Pipeline.UnitTests.Processor;

namespace Pipeline.IntegrationTests.Processor;

/// <summary>Random event streams for the broker-level tests, generated from logged seeds so a failure can be replayed.</summary>
internal static class FeedScenarios
{
    /// <summary>Set to a comma-separated list of seeds (as logged by a failed run) to replay those scenarios.</summary>
    public const string SeedsVariable = "FEED_SCENARIO_SEEDS";

    /// <summary>
    /// One event among <paramref name="users"/>, who are authors and followers alike. Weights as in the unit-level
    /// property test: follows 4, unfollows 2, blocks 1, posts 6, deletes 2, with post ids from a small pool, so
    /// scenarios are dense with duplicates, refollows, deletes of posts held, trimmed or never seen, and full feeds.
    /// </summary>
    public static Gen<FeedInput> Event(string[] users, int postIds) =>
        Gen.Select(Gen.Int[0, 14], Gen.Int[0, users.Length - 1], Gen.Int[1, users.Length - 1], Gen.Int[0, postIds - 1])
            .Select((kind, first, distance, post) =>
            {
                // Distance 1..n-1 around the ring: the second user is never the first.
                var (actor, other) = (users[first], users[(first + distance) % users.Length]);
                return kind switch
                {
                    < 4 => (FeedInput)new FeedInput.Follow(actor, other),
                    < 6 => new FeedInput.Unfollow(actor, other),
                    < 7 => new FeedInput.Block(actor, other),
                    < 13 => new FeedInput.Post(actor, PostId(post)),
                    _ => new FeedInput.Delete(actor, PostId(post)),
                };
            });

    /// <summary>
    /// A burst whose processing order cannot differ from its production order in any way a feed could show:
    /// either one author's posts and deletes (one partition of social.posts, read in order), or follows, unfollows
    /// and blocks of one author (interleaved across followers, but each follower's own events stay in order, and
    /// each changes only that follower's feed from posts the burst does not change).
    /// </summary>
    public static Gen<FeedInput[]> Burst(string[] users, int postIds, int length) =>
        Gen.Select(Gen.Int[0, users.Length - 1], Gen.Bool).SelectMany((author, posts) =>
        {
            var subject = users[author];
            var followers = users.Where(user => user != subject).ToArray();
            var events = posts
                ? Gen.Select(Gen.Int[0, 4], Gen.Int[0, postIds - 1]).Select((kind, post) =>
                    kind < 4 ? (FeedInput)new FeedInput.Post(subject, PostId(post)) : new FeedInput.Delete(subject, PostId(post)))
                : Gen.Select(Gen.Int[0, 6], Gen.Int[0, followers.Length - 1]).Select((kind, follower) => kind switch
                {
                    < 4 => (FeedInput)new FeedInput.Follow(followers[follower], subject),
                    < 6 => new FeedInput.Unfollow(followers[follower], subject),
                    _ => new FeedInput.Block(followers[follower], subject),
                });
            return events.Array[length];
        });

    /// <summary>The seeds to run: those in <see cref="SeedsVariable"/> if set, otherwise <paramref name="count"/> new ones.</summary>
    public static ulong[] Seeds(int count)
    {
        var replay = Environment.GetEnvironmentVariable(SeedsVariable);
        return string.IsNullOrWhiteSpace(replay)
            ? Enumerable.Range(0, count).Select(_ => (ulong)Random.Shared.NextInt64()).ToArray()
            : replay.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(seed => ulong.Parse(seed, CultureInfo.InvariantCulture)).ToArray();
    }

    public static T Generate<T>(this Gen<T> gen, ulong seed) => gen.Generate(new PCG(1, seed), null, out _);

    private static string PostId(int index) => string.Create(CultureInfo.InvariantCulture, $"p{index}");
}
