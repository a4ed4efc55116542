using Grpc.Core;
using Pipeline.Kafka.Contracts;

namespace Pipeline.StreamEdge.Auth;

/// <summary>
/// Decides whose data a call may touch. Today it only validates the id the request names; authentication
/// (the caller's identity from its JWT) plugs in here so the gRPC services never read identity themselves.
/// </summary>
public sealed class FeedAccessPolicy
{
    /// <summary>The user whose feed the caller may read, or an RpcException (INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED).</summary>
    public string ResolveFeedOwner(ServerCallContext context, string requestedUserId) => RequireValidId("user_id", requestedUserId);

    /// <summary>The user on whose behalf the caller may write (post, follow), or an RpcException.</summary>
    public string ResolveActor(ServerCallContext context, string field, string requestedUserId) => RequireValidId(field, requestedUserId);

    private static string RequireValidId(string field, string value)
    {
        var invalid = FeedContract.ValidateId(field, value);
        return invalid is null ? value : throw new RpcException(new Status(StatusCode.InvalidArgument, invalid));
    }
}
