using System.Globalization;

namespace Pipeline.Processor.Topology;

/// <summary>Store names; each is also the middle of its changelog topic name, "{applicationId}-{store}-changelog".</summary>
public static class StoreNames
{
    /// <summary>"{author}|{follower}" → follow time. One entry per edge; an author's followers are one key range.</summary>
    public const string FollowerIndex = "follower-index";

    /// <summary>"{author}|{sequence}" → post: the author's newest posts (backfill size), for backfill on follow.</summary>
    public const string RecentPosts = "recent-posts";

    /// <summary>"{author}|{postId}" → sequence + 1, or -1 once deleted: every post id the author ever used.</summary>
    public const string PostLedger = "post-ledger";

    /// <summary>"{user}|{sequence}" → post: the user's stored feed, oldest first.</summary>
    public const string FeedEntries = "feed-entries";

    /// <summary>"{user}|{author}|{postId}" → sequence + 1: what the user's feed holds, by author.</summary>
    public const string FeedIndex = "feed-index";

    /// <summary>"{user}" → <see cref="FeedHead"/>: how many entries the user's stored feed holds, and their sequence range.</summary>
    public const string FeedHeads = "feed-heads";

    /// <summary>"{topic}" → offset + 1 of the last social.follows record the follows gate applied (per task).</summary>
    public const string FollowsPositions = "follows-positions";

    /// <summary>"{topic}" → offset + 1 of the last record the author stage's sources applied (social.posts, the follows repartition).</summary>
    public const string AuthorPositions = "author-positions";

    /// <summary>"{topic}" → offset + 1 of the last command the recipient stage applied.</summary>
    public const string RecipientPositions = "recipient-positions";

    public static IReadOnlyList<string> All { get; } = [FollowerIndex, RecentPosts, PostLedger, FeedEntries, FeedIndex, FeedHeads, FollowsPositions, AuthorPositions, RecipientPositions];
}

/// <summary>
/// Composite keys "{owner}|{member}". Ids never contain '|' (FeedContract), and '}' sorts right after '|', so
/// [owner + "|", owner + "}"] is exactly one owner's keys: "bob|…" never matches "bobby|…". Sequences are
/// zero-padded to 19 digits so that byte order is numeric order.
/// </summary>
public static class AuthorKeys
{
    public static string Member(string author, string member) => string.Concat(author, "|", member);

    public static string Sequenced(string author, long sequence) => string.Concat(author, "|", sequence.ToString("D19", CultureInfo.InvariantCulture));

    public static string Start(string author) => author + "|";

    public static string End(string author) => author + "}";

    public static string MemberOf(string key, string author) => key[(author.Length + 1)..];
}

/// <summary>Keys of the recipient-side stores (see <see cref="AuthorKeys"/> for the ordering rules).</summary>
public static class RecipientKeys
{
    public static string Entry(string user, long sequence) => string.Concat(user, "|", sequence.ToString("D19", CultureInfo.InvariantCulture));

    public static long EntrySequence(string key, string user) => long.Parse(key.AsSpan(user.Length + 1), CultureInfo.InvariantCulture);

    public static string EntryEnd(string user) => user + "}";

    public static string Held(string user, string author, string postId) => string.Concat(user, "|", author, "|", postId);

    public static string HeldStart(string user, string author) => string.Concat(user, "|", author, "|");

    public static string HeldEnd(string user, string author) => string.Concat(user, "|", author, "}");

    public static string HeldPostId(string key, string user, string author) => key[(user.Length + author.Length + 2)..];
}
