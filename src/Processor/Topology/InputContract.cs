using System.Text;
using Feed.V1;
using Google.Protobuf;
using Pipeline.Kafka.Contracts;

namespace Pipeline.Processor.Topology;

/// <summary>
/// What a raw record on each input topic must satisfy (DESIGN.md topic contracts). A record that fails is
/// rejected with a reason that tells the producer what to fix.
/// </summary>
public static class InputContract
{
    public static Admission AdmitFollow(byte[]? key, byte[]? value)
    {
        if (!TryParse(value, FollowEvent.Parser, out var follow, out var parseError))
        {
            return Admission.Reject(parseError, value);
        }

        var error = follow.Action is FollowAction.Follow or FollowAction.Unfollow or FollowAction.Block
            ? FeedContract.ValidateFollowPair(follow.FollowerId, follow.FolloweeId) ?? KeyMismatch(key, follow.FollowerId, "follower_id")
            : $"unknown follow action {(int)follow.Action}";
        return error is null ? Admission.Admit(AuthorEvent.Of(follow)) : Admission.Reject(error, value);
    }

    public static Admission AdmitPost(byte[]? key, byte[]? value, int maxBodyBytes)
    {
        if (!TryParse(value, PostEvent.Parser, out var post, out var parseError))
        {
            return Admission.Reject(parseError, value);
        }

        var error = FeedContract.ValidateId("author_id", post.AuthorId)
            ?? FeedContract.ValidateId("post_id", post.PostId)
            ?? post.Action switch
            {
                PostAction.Created => FeedContract.ValidatePostBody(post.Body, maxBodyBytes),
                PostAction.Deleted => null,
                _ => $"unknown post action {(int)post.Action}",
            }
            ?? KeyMismatch(key, post.AuthorId, "author_id");
        return error is null ? Admission.Admit(AuthorEvent.Of(post)) : Admission.Reject(error, value);
    }

    private static bool TryParse<T>(byte[]? value, MessageParser<T> parser, out T message, out string error)
        where T : IMessage<T>
    {
        message = default!;
        if (value is null || value.Length == 0)
        {
            error = "record has no value";
            return false;
        }

        try
        {
            message = parser.ParseFrom(value);
            error = "";
            return true;
        }
        catch (InvalidProtocolBufferException ex)
        {
            error = $"value is not a valid {typeof(T).Name}: {ex.Message}";
            return false;
        }
    }

    private static string? KeyMismatch(byte[]? key, string expected, string field)
    {
        if (key is null)
        {
            return $"record has no key; the key must equal {field}";
        }

        var actual = Encoding.UTF8.GetString(key);
        return string.Equals(actual, expected, StringComparison.Ordinal) ? null : $"key '{actual}' does not match {field} '{expected}'";
    }
}
