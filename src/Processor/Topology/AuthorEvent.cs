using Feed.V1;

namespace Pipeline.Processor.Topology;

/// <summary>
/// A validated input event, keyed by the author it concerns: a follow of the author (re-keyed by followee) or
/// one of the author's posts. Both streams meet in one processor so the author's state lives in one task.
/// </summary>
public sealed class AuthorEvent
{
    private AuthorEvent(FollowEvent? follow, PostEvent? post)
    {
        Follow = follow;
        Post = post;
    }

    public FollowEvent? Follow { get; }

    public PostEvent? Post { get; }

    public static AuthorEvent Of(FollowEvent follow) => new(follow, null);

    public static AuthorEvent Of(PostEvent post) => new(null, post);
}

/// <summary>The input gate's verdict on one raw record: an admitted event, or the reason it was rejected.</summary>
public sealed class Admission
{
    private Admission(AuthorEvent? admitted, string? rejection, byte[]? originalValue)
    {
        Admitted = admitted;
        Rejection = rejection;
        OriginalValue = originalValue;
    }

    public AuthorEvent? Admitted { get; }

    public string? Rejection { get; }

    public byte[]? OriginalValue { get; }

    public bool IsRejected => Rejection is not null;

    public static Admission Admit(AuthorEvent admitted) => new(admitted, null, null);

    public static Admission Reject(string reason, byte[]? originalValue) => new(null, reason, originalValue);
}
