using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Pipeline.Kafka;
using Pipeline.Kafka.Contracts;
using Pipeline.StreamEdge.Auth;
using Pipeline.StreamEdge.Ingest;

namespace Pipeline.StreamEdge.Api;

/// <summary>Validates write requests and appends them to social.posts / social.follows; nothing invalid reaches Kafka.</summary>
public sealed class IngestGrpcService : IngestService.IngestServiceBase
{
    private readonly FeedEventPublisher _publisher;
    private readonly FeedAccessPolicy _access;
    private readonly TimeProvider _clock;
    private readonly int _maxPostBodyBytes;

    public IngestGrpcService(FeedEventPublisher publisher, TimeProvider clock, IOptions<EdgeOptions> options, FeedAccessPolicy access)
    {
        _access = access;
        _publisher = publisher;
        _clock = clock;
        _maxPostBodyBytes = options.Value.MaxPostBodyBytes;
    }

    public override async Task<PublishPostResponse> PublishPost(PublishPostRequest request, ServerCallContext context)
    {
        var author = _access.ResolveActor(context, "author_id", request.AuthorId);
        EnsureValid(
            FeedContract.ValidatePostBody(request.Body, _maxPostBodyBytes)
            ?? (request.PostId.Length == 0 ? null : FeedContract.ValidateId("post_id", request.PostId)));

        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        var post = new PostEvent
        {
            PostId = request.PostId.Length == 0 ? Guid.CreateVersion7().ToString("N") : request.PostId,
            AuthorId = author,
            Action = PostAction.Created,
            Body = request.Body,
            CreatedAtMs = now,
            OccurredAtMs = now,
        };
        await PublishAsync(FeedTopics.Posts, post.AuthorId, post, context);
        return new PublishPostResponse { PostId = post.PostId, CreatedAtMs = now };
    }

    public override Task<IngestAck> DeletePost(DeletePostRequest request, ServerCallContext context)
    {
        var author = _access.ResolveActor(context, "author_id", request.AuthorId);
        EnsureValid(FeedContract.ValidateId("post_id", request.PostId));
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        var post = new PostEvent { PostId = request.PostId, AuthorId = author, Action = PostAction.Deleted, OccurredAtMs = now };
        return PublishAsync(FeedTopics.Posts, post.AuthorId, post, context);
    }

    public override Task<IngestAck> Follow(FollowRequest request, ServerCallContext context) =>
        PublishFollowAsync(request, FollowAction.Follow, context);

    public override Task<IngestAck> Unfollow(FollowRequest request, ServerCallContext context) =>
        PublishFollowAsync(request, FollowAction.Unfollow, context);

    private Task<IngestAck> PublishFollowAsync(FollowRequest request, FollowAction action, ServerCallContext context)
    {
        var follower = _access.ResolveActor(context, "follower_id", request.FollowerId);
        EnsureValid(FeedContract.ValidateFollowPair(follower, request.FolloweeId));
        var follow = new FollowEvent
        {
            EventId = Guid.CreateVersion7().ToString("N"),
            FollowerId = follower,
            FolloweeId = request.FolloweeId,
            Action = action,
            OccurredAtMs = _clock.GetUtcNow().ToUnixTimeMilliseconds(),
        };
        return PublishAsync(FeedTopics.Follows, follow.FollowerId, follow, context);
    }

    private async Task<IngestAck> PublishAsync(string topic, string key, IMessage value, ServerCallContext context)
    {
        try
        {
            var delivery = await _publisher.PublishAsync(topic, key, value, context.CancellationToken);
            return new IngestAck { Partition = delivery.Partition.Value, Offset = delivery.Offset.Value };
        }
        catch (ProduceException<string, byte[]> ex)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"could not append to {topic}: {ex.Error.Reason}; the request was not applied and may be retried"));
        }
    }

    private static void EnsureValid(string? error)
    {
        if (error is not null)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, error));
        }
    }
}
