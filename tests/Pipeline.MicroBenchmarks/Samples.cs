using System.Globalization;
using System.Text;
using Feed.V1;

namespace Pipeline.MicroBenchmarks;

/// <summary>Realistic record contents: ids shaped like production ones, a post body of about 200 UTF-8 bytes.</summary>
internal static class Samples
{
    public const string Author = "user-12345";

    public const string Recipient = "user-67890";

    public const long OccurredAtMs = 1_767_225_600_000;

    public static readonly string Body = BuildBody();

    /// <summary>A fixed HMAC key for the cursor codec (the edge requires at least 32 bytes).</summary>
    public static readonly byte[] CursorKey = Encoding.UTF8.GetBytes("micro-benchmark cursor signing key, 32+ bytes");

    public static string UserId(int n) => "user-" + n.ToString(CultureInfo.InvariantCulture);

    public static string PostId(int n) => "post-" + n.ToString("D8", CultureInfo.InvariantCulture);

    public static Post Post(int n = 1) => new()
    {
        PostId = PostId(n),
        AuthorId = Author,
        Body = Body,
        CreatedAtMs = OccurredAtMs,
    };

    public static PostEvent PostEvent(int n = 1) => new()
    {
        PostId = PostId(n),
        AuthorId = Author,
        Action = PostAction.Created,
        Body = Body,
        CreatedAtMs = OccurredAtMs,
        OccurredAtMs = OccurredAtMs,
    };

    public static FeedUpdate FeedUpdate(string recipient, Post post) => new()
    {
        RecipientId = recipient,
        Kind = FeedUpdateKind.Added,
        Cause = FeedCause.Live,
        Post = post,
        SourceOccurredAtMs = OccurredAtMs,
    };

    private static string BuildBody()
    {
        const string sentence = "Shipped the new feed edge today: cursors resume across instances, snapshots come from the local replica. ";
        var body = new StringBuilder();
        while (body.Length < 200)
        {
            body.Append(sentence);
        }

        return body.ToString(0, 200);
    }
}
