using Feed.V1;

namespace Pipeline.FaultBattery;

/// <summary>How far what was delivered is from what the reference model expects.</summary>
public sealed record Verdict(long Expected, long Delivered, long Lost, long Duplicated, long Reordered, long Unexpected)
{
    /// <summary>A few of the differences, for the failure message.</summary>
    public IReadOnlyList<string> Examples { get; init; } = [];

    public bool Exact => Lost == 0 && Duplicated == 0 && Reordered == 0 && Unexpected == 0;

    public static Verdict operator +(Verdict a, Verdict b) => new(
        a.Expected + b.Expected, a.Delivered + b.Delivered, a.Lost + b.Lost, a.Duplicated + b.Duplicated, a.Reordered + b.Reordered, a.Unexpected + b.Unexpected)
    {
        Examples = [.. a.Examples.Concat(b.Examples).Take(5)],
    };

    public static Verdict Empty { get; } = new(0, 0, 0, 0, 0, 0);
}

public static class Verifier
{
    /// <summary>
    /// Compares every user's feed, rebuilt from feed.updates, with the model: per user and author, the posts in
    /// order. Lost: in the model, not in the feed. Unexpected: the other way round. Duplicated: an update that adds
    /// a post the feed already holds (exactly-once forbids it even when the feed ends up right). Reordered: an
    /// author's posts present in both but in another order.
    /// </summary>
    public static Verdict FeedsAgainstModel(IReadOnlyDictionary<string, List<(string Author, string PostId)>> model, IEnumerable<ObservedUpdate> updates)
    {
        var feeds = new Dictionary<string, List<(string Author, string PostId)>>(StringComparer.Ordinal);
        long duplicated = 0;
        var examples = new List<string>();
        foreach (var update in updates.OrderBy(u => u.Partition).ThenBy(u => u.Offset))
        {
            if (!feeds.TryGetValue(update.User, out var feed))
            {
                feeds[update.User] = feed = [];
            }

            var entry = (update.Author, update.PostId);
            if (update.Kind == FeedUpdateKind.Added)
            {
                if (feed.Contains(entry))
                {
                    duplicated++;
                    Note(examples, $"{update.User}: {update.PostId} added again at {update.Partition}@{update.Offset}");
                }
                else
                {
                    feed.Add(entry);
                }
            }
            else
            {
                feed.Remove(entry);
            }
        }

        var verdict = Compare(model, feeds);
        return verdict with { Duplicated = duplicated, Examples = [.. examples.Concat(verdict.Examples).Take(5)] };
    }

    /// <summary>
    /// Compares what each subscriber received with the updates feed.updates holds for its user after its starting
    /// position: the exact sequence, in order.
    /// </summary>
    public static Verdict Sequences(IReadOnlyDictionary<string, List<(FeedUpdateKind Kind, string PostId)>> expected, IReadOnlyDictionary<string, List<(FeedUpdateKind Kind, string PostId)>> received)
    {
        var verdict = Verdict.Empty;
        foreach (var (user, want) in expected)
        {
            var got = received.GetValueOrDefault(user, []);
            var gotCounts = got.GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
            var wantSet = want.ToHashSet();
            var lost = want.Count(x => !gotCounts.ContainsKey(x));
            var duplicated = gotCounts.Values.Sum(c => c - 1);
            var unexpected = got.Count(x => !wantSet.Contains(x));
            var common = got.Distinct().Where(wantSet.Contains).ToList();
            var reordered = common.SequenceEqual(want.Where(gotCounts.ContainsKey)) ? 0 : 1;
            verdict += new Verdict(want.Count, got.Count, lost, duplicated, reordered, unexpected);
        }

        return verdict;
    }

    private static Verdict Compare(IReadOnlyDictionary<string, List<(string Author, string PostId)>> model, Dictionary<string, List<(string Author, string PostId)>> feeds)
    {
        long expected = 0, delivered = 0, lost = 0, reordered = 0, unexpected = 0;
        var examples = new List<string>();
        foreach (var user in model.Keys.Union(feeds.Keys))
        {
            var want = model.GetValueOrDefault(user, []);
            var got = feeds.GetValueOrDefault(user, []);
            expected += want.Count;
            delivered += got.Count;
            var wantSet = want.ToHashSet();
            var gotSet = got.ToHashSet();
            foreach (var missing in want.Where(e => !gotSet.Contains(e)))
            {
                lost++;
                Note(examples, $"{user}: lost {missing.PostId}");
            }

            foreach (var extra in got.Where(e => !wantSet.Contains(e)))
            {
                unexpected++;
                Note(examples, $"{user}: unexpected {extra.PostId}");
            }

            foreach (var author in want.Select(e => e.Author).Distinct())
            {
                var wantOrder = want.Where(e => e.Author == author && gotSet.Contains(e));
                var gotOrder = got.Where(e => e.Author == author && wantSet.Contains(e));
                if (!wantOrder.SequenceEqual(gotOrder))
                {
                    reordered++;
                    Note(examples, $"{user}: {author}'s posts out of order");
                }
            }
        }

        return new Verdict(expected, delivered, lost, 0, reordered, unexpected) { Examples = examples };
    }

    private static void Note(List<string> examples, string example)
    {
        if (examples.Count < 5)
        {
            examples.Add(example);
        }
    }
}
