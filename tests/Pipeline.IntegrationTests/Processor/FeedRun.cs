using Feed.V1;
using Pipeline.UnitTests.Processor;
using Xunit.Abstractions;

namespace Pipeline.IntegrationTests.Processor;

/// <summary>
/// Events fed to the processor on the broker and to the reference model in the same order, and the whole of
/// feed.updates checked against the model afterwards.
/// </summary>
internal sealed class FeedRun
{
    private const string ProbeAuthor = "probe-author";

    // Each user's commands and updates go to the partition its id hashes to (murmur2): these three ids hash to
    // partitions 1, 0 and 2 of three, so a probe post reaching all of them passes through every partition.
    private static readonly string[] ProbeUsers = ["probe-0", "probe-1", "probe-6"];

    private readonly ProcessorHarness _processor;
    private readonly FeedModel _model;
    private readonly Dictionary<string, List<FeedChange>> _expectedChanges = new(StringComparer.Ordinal);
    private int _settlements;

    public FeedRun(ProcessorHarness processor)
    {
        _processor = processor;
        _model = new FeedModel(processor.BackfillSize, processor.FeedSize);
    }

    /// <summary>
    /// Applies <paramref name="input"/> to the model only, recording the updates it implies for each user. Call it in
    /// the order the processor will apply the events.
    /// </summary>
    /// <remarks>
    /// Follows and posts only add (the cap drops entries silently); unfollows, blocks and deletes only remove. With
    /// a backfill no larger than the feed, nothing added by one event is dropped by the same event, so the
    /// difference between a feed before and after an event is exactly the updates the processor must emit.
    /// </remarks>
    public void Expect(FeedInput input)
    {
        var before = _model.Feeds.ToDictionary(feed => feed.Key, feed => feed.Value.ToList(), StringComparer.Ordinal);
        _model.Apply(input);
        var adds = input is FeedInput.Follow or FeedInput.Post;
        foreach (var (user, after) in _model.Feeds)
        {
            var earlier = before.GetValueOrDefault(user, []);
            var changes = adds
                ? after.Except(earlier).Select(entry => new FeedChange(FeedUpdateKind.Added, entry.Author, entry.PostId))
                : earlier.Except(after).Select(entry => new FeedChange(FeedUpdateKind.Removed, entry.Author, entry.PostId));
            ExpectedChanges(user).AddRange(changes);
        }
    }

    /// <summary>
    /// Applies each event to the model and to the processor, producing the next only once the processor took the
    /// previous one in. Follows pass through a repartition topic and posts do not, so without the wait a post could
    /// overtake a follow and the processor would apply the events in another order than the model.
    /// </summary>
    public async Task ApplyAsync(IEnumerable<FeedInput> inputs, CancellationToken cancellationToken)
    {
        foreach (var input in inputs)
        {
            Expect(input);
            await _processor.ApplyAsync(input, cancellationToken);
        }
    }

    public Task FollowProbeAuthorAsync(CancellationToken cancellationToken) =>
        ApplyAsync(ProbeUsers.Select(probe => new FeedInput.Follow(probe, ProbeAuthor)), cancellationToken);

    /// <summary>Waits until the processor has applied everything produced so far, then asserts that feed.updates matches the model.</summary>
    /// <param name="scenario">Names the scenario (its seeds) in the failure message.</param>
    public async Task AssertMatchesModelAsync(string scenario, ITestOutputHelper output, CancellationToken cancellationToken)
    {
        var updates = await SettleAsync(cancellationToken);
        output.WriteLine($"{updates.Count} updates for {updates.Select(update => update.User).Distinct().Count()} users");

        var differences = Differences(updates);
        Assert.True(
            differences.Count == 0,
            $"{scenario}: {differences.Count} difference(s) between feed.updates and the model:\n{string.Join("\n", differences.Take(20))}");
    }

    /// <summary>
    /// Waits until the processor has applied everything produced so far, and returns all of feed.updates. The probe
    /// author posts once more; its post reaches every partition of the recipient stage behind every earlier command,
    /// so once each probe user's copy is committed, so is everything before it.
    /// </summary>
    private async Task<List<ObservedUpdate>> SettleAsync(CancellationToken cancellationToken)
    {
        var marker = $"settled-{++_settlements}";
        await ApplyAsync([new FeedInput.Post(ProbeAuthor, marker)], cancellationToken);
        while (true)
        {
            var updates = await _processor.ReadUpdatesAsync(cancellationToken);
            var markers = updates.Where(update => update.Kind == FeedUpdateKind.Added && update.Author == ProbeAuthor && update.PostId == marker).ToList();
            if (markers.Select(update => update.User).Distinct().Count() == ProbeUsers.Length)
            {
                var partitions = markers.Select(update => update.Partition).Distinct().Count();
                if (partitions != ProcessorHarness.Partitions)
                {
                    throw new InvalidOperationException($"the probe users cover {partitions} of {ProcessorHarness.Partitions} partitions; choose other names");
                }

                return updates;
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    /// <summary>
    /// What differs between feed.updates and the model, per user, empty when nothing does:
    /// <list type="bullet">
    /// <item>replaying the user's updates (added appends, removed removes, capped at the feed size) must give the
    /// model's feed, in order;</item>
    /// <item>the updates themselves must be exactly the changes the model's feed went through: no update twice
    /// (exactly-once), none missing, none spurious.</item>
    /// </list>
    /// </summary>
    private List<string> Differences(IReadOnlyList<ObservedUpdate> updates)
    {
        var observed = updates
            .GroupBy(update => update.User, StringComparer.Ordinal)
            .ToDictionary(user => user.Key, user => user.Select(update => new FeedChange(update.Kind, update.Author, update.PostId)).ToList(), StringComparer.Ordinal);
        var differences = new List<string>();
        foreach (var user in _model.Feeds.Keys.Union(observed.Keys).Union(_expectedChanges.Keys).Order(StringComparer.Ordinal))
        {
            var changes = observed.GetValueOrDefault(user, []);
            var replayed = Replay(changes, _processor.FeedSize);
            var expectedFeed = _model.Feeds.GetValueOrDefault(user, []);
            if (!replayed.SequenceEqual(expectedFeed))
            {
                differences.Add($"{user}: feed.updates replays to [{string.Join(", ", replayed)}], the model holds [{string.Join(", ", expectedFeed)}]");
            }

            var expectedChanges = _expectedChanges.GetValueOrDefault(user, []);
            if (!changes.SequenceEqual(expectedChanges))
            {
                var at = changes.Zip(expectedChanges).TakeWhile(pair => pair.First == pair.Second).Count();
                differences.Add(
                    $"{user}: updates differ from #{at}: got [{string.Join(", ", changes.Skip(at))}], expected [{string.Join(", ", expectedChanges.Skip(at))}]");
            }
        }

        return differences;
    }

    private static List<(string Author, string PostId)> Replay(IEnumerable<FeedChange> changes, int feedSize)
    {
        var feed = new List<(string Author, string PostId)>();
        foreach (var change in changes)
        {
            FeedModel.Replay(feed, change.Kind == FeedUpdateKind.Added, (change.Author, change.PostId), feedSize);
        }

        return feed;
    }

    private List<FeedChange> ExpectedChanges(string user) =>
        _expectedChanges.TryGetValue(user, out var changes) ? changes : _expectedChanges[user] = [];

    private sealed record FeedChange(FeedUpdateKind Kind, string Author, string PostId)
    {
        public override string ToString() => $"{(Kind == FeedUpdateKind.Added ? "+" : "-")}{Author}/{PostId}";
    }
}
