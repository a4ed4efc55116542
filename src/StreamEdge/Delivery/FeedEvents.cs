using Feed.V1;
using Google.Protobuf;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>How a feed.updates record is shown to subscribers.</summary>
public static class FeedEvents
{
    /// <summary>The scope partition cursors are bound to; '*' is not allowed in user ids, so no user cursor matches it.</summary>
    public const string PartitionScope = "*partitions";

    /// <summary>
    /// Parses a feed.updates record; false (with the reason) for one no subscriber can be given: not a FeedUpdate,
    /// or without a recipient.
    /// </summary>
    public static bool TryParse(byte[]? value, out FeedUpdate update, out string reason)
    {
        try
        {
            // From a span: parsing a byte[] builds a CodedInputStream per record.
            update = FeedUpdate.Parser.ParseFrom(new ReadOnlySpan<byte>(value));
        }
        catch (InvalidProtocolBufferException ex)
        {
            (update, reason) = (null!, ex.Message);
            return false;
        }

        reason = string.IsNullOrEmpty(update.RecipientId) ? "no recipient_id" : "";
        return reason.Length == 0;
    }

    /// <summary>The event of a user's stream (its cursor is set per user by the caller).</summary>
    public static FeedEvent ToFeedEvent(FeedUpdate update)
    {
        var feedEvent = new FeedEvent();
        if (update.Kind == FeedUpdateKind.Removed)
        {
            feedEvent.Removed = Removed(update);
        }
        else
        {
            feedEvent.Added = Added(update);
        }

        return feedEvent;
    }

    /// <summary>The event of a partition-range stream, with its partition cursor.</summary>
    public static PartitionFeedEvent ToPartitionEvent(FeedUpdate update, int partition, long offset, CursorCodec cursors)
    {
        var feedEvent = new PartitionFeedEvent
        {
            Cursor = cursors.Encode(FeedCursor.At(partition, offset), PartitionScope),
            Partition = partition,
            UserId = update.RecipientId,
        };
        if (update.Kind == FeedUpdateKind.Removed)
        {
            feedEvent.Removed = Removed(update);
        }
        else
        {
            feedEvent.Added = Added(update);
        }

        return feedEvent;
    }

    private static FeedEntry Added(FeedUpdate update) =>
        new() { Post = update.Post, Cause = update.Cause, SourceOccurredAtMs = update.SourceOccurredAtMs };

    private static FeedEntryRemoved Removed(FeedUpdate update) =>
        new() { PostId = update.Post?.PostId ?? "", AuthorId = update.Post?.AuthorId ?? "", Cause = update.Cause };
}
