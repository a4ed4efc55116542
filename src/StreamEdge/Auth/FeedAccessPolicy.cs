using System.Security.Claims;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Pipeline.Kafka.Contracts;

namespace Pipeline.StreamEdge.Auth;

/// <summary>
/// Decides whose data a call may touch. The caller is the subject of its validated JWT, never a request field;
/// a request may name another user only when the caller holds the service role. The gRPC services call this
/// before anything else, so a refused call has sent nothing.
/// </summary>
public sealed class FeedAccessPolicy
{
    private readonly string _serviceRole;

    public FeedAccessPolicy(IOptions<AuthOptions> options)
    {
        _serviceRole = options.Value.ServiceRole;
    }

    /// <summary>
    /// The user whose feed the caller may read: the caller's own when <paramref name="requestedUserId"/> is empty.
    /// Throws RpcException with UNAUTHENTICATED, INVALID_ARGUMENT or PERMISSION_DENIED.
    /// </summary>
    public string ResolveFeedOwner(ServerCallContext context, string requestedUserId)
    {
        var caller = Authenticated(context);
        var subject = SubjectOf(caller);
        if (requestedUserId.Length == 0)
        {
            return RequireUsableSubject(subject);
        }

        RequireValidId("user_id", requestedUserId);
        if (requestedUserId == subject || HasServiceRole(caller))
        {
            return requestedUserId;
        }

        throw new RpcException(new Status(StatusCode.PermissionDenied,
            $"user_id '{requestedUserId}' is not the caller: users may only subscribe to their own feed (leave user_id empty for it); reading other feeds needs the '{_serviceRole}' service role"));
    }

    /// <summary>
    /// The user on whose behalf the caller writes (post, delete, follow): itself, or anyone for the service role
    /// (ingest bridges). Throws RpcException with UNAUTHENTICATED, INVALID_ARGUMENT or PERMISSION_DENIED.
    /// </summary>
    /// <remarks>
    /// Unlike a feed read, an empty id is refused rather than defaulted to the caller: the ingest service writes
    /// the request's own field to Kafka, so a default here would publish an event with no author.
    /// </remarks>
    public string ResolveActor(ServerCallContext context, string field, string requestedUserId)
    {
        var caller = Authenticated(context);
        var subject = SubjectOf(caller);
        var service = HasServiceRole(caller);

        // A user writes as themselves by default; a service acts for others, so it must always say for whom.
        if (string.IsNullOrEmpty(requestedUserId) && !service)
        {
            requestedUserId = subject;
        }

        RequireValidId(field, requestedUserId);
        if (requestedUserId == subject || service)
        {
            return requestedUserId;
        }

        throw new RpcException(new Status(StatusCode.PermissionDenied,
            $"{field} '{requestedUserId}' is not the caller: users may only write as themselves; writing for other users needs the '{_serviceRole}' service role"));
    }

    /// <summary>Admits only trusted services (partition subscriptions); throws UNAUTHENTICATED or PERMISSION_DENIED.</summary>
    public void RequireService(ServerCallContext context)
    {
        if (!HasServiceRole(Authenticated(context)))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"subscribing to partitions of every user's feed needs the '{_serviceRole}' service role; users subscribe to their own feed with Subscribe"));
        }
    }

    /// <summary>Whether the caller is a trusted service (may read every feed and write for every user).</summary>
    public bool IsService(ServerCallContext context) => HasServiceRole(Authenticated(context));

    private bool HasServiceRole(ClaimsPrincipal caller)
    {
        foreach (var claim in caller.Claims)
        {
            var granted = claim.Type switch
            {
                FeedClaims.Role or FeedClaims.Roles => claim.Value == _serviceRole,
                FeedClaims.Scope => claim.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(_serviceRole, StringComparer.Ordinal),
                _ => false,
            };
            if (granted)
            {
                return true;
            }
        }

        return false;
    }

    private static ClaimsPrincipal Authenticated(ServerCallContext context)
    {
        // The endpoints already require an authenticated caller; this keeps a method mapped without that
        // requirement from ever serving data anonymously.
        var caller = context.GetHttpContext().User;
        return caller.Identity?.IsAuthenticated == true
            ? caller
            : throw new RpcException(new Status(StatusCode.Unauthenticated, "this call needs a valid JWT in the 'authorization: Bearer <token>' metadata"));
    }

    private static string SubjectOf(ClaimsPrincipal caller) =>
        caller.FindFirst(FeedClaims.Subject)?.Value is { Length: > 0 } subject
            ? subject
            : throw new RpcException(new Status(StatusCode.Unauthenticated, "the bearer token has no 'sub' claim: the edge identifies users by it"));

    private static string RequireUsableSubject(string subject)
    {
        var invalid = FeedContract.ValidateId("sub", subject);
        return invalid is null
            ? subject
            : throw new RpcException(new Status(StatusCode.PermissionDenied, $"the token's subject is not a usable user id ({invalid}); ask the identity provider for subjects the feed accepts"));
    }

    private static void RequireValidId(string field, string value)
    {
        if (FeedContract.ValidateId(field, value) is { } invalid)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, invalid));
        }
    }
}
