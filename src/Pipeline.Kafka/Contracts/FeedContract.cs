using System.Text;

namespace Pipeline.Kafka.Contracts;

/// <summary>
/// The rules every id and post must satisfy, shared by ingest (which rejects a request) and the processor
/// (which dead-letters a record), so both sides agree on what "valid" means.
/// </summary>
public static class FeedContract
{
    public const int MaxIdLength = 64;

    /// <summary>Default upper bound on a post body, in UTF-8 bytes.</summary>
    public const int DefaultMaxPostBodyBytes = 4096;

    /// <summary>
    /// Returns null when <paramref name="value"/> is a valid id, otherwise a message naming the field.
    /// Ids are 1–64 characters of [A-Za-z0-9_.:@-]. The narrow alphabet keeps ids safe as store-key
    /// components: '|' separates them in composite keys and sorts below every allowed character's successor.
    /// </summary>
    public static string? ValidateId(string field, string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return $"{field} is required";
        }

        if (value.Length > MaxIdLength)
        {
            return $"{field} is {value.Length} characters long; the limit is {MaxIdLength}";
        }

        foreach (var c in value)
        {
            if (!IsIdChar(c))
            {
                return $"{field} contains '{(char.IsControl(c) ? '?' : c)}'; ids may contain only letters, digits and _ . : @ -";
            }
        }

        return null;
    }

    /// <summary>Returns null when the body is acceptable, otherwise the reason.</summary>
    public static string? ValidatePostBody(string? body, int maxBytes)
    {
        if (string.IsNullOrWhiteSpace(body))
        {
            return "body is required";
        }

        var bytes = Encoding.UTF8.GetByteCount(body);
        return bytes > maxBytes ? $"body is {bytes} bytes (UTF-8); the limit is {maxBytes}" : null;
    }

    public static string? ValidateFollowPair(string? followerId, string? followeeId) =>
        ValidateId("follower_id", followerId)
        ?? ValidateId("followee_id", followeeId)
        ?? (string.Equals(followerId, followeeId, StringComparison.Ordinal) ? "a user cannot follow themselves" : null);

    private static bool IsIdChar(char c) =>
        c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' or '.' or ':' or '@' or '-';
}
