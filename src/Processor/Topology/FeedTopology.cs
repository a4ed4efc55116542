using Feed.V1;
using Pipeline.Kafka;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.Processors.Public;
using Streamiz.Kafka.Net.SerDes;
using Streamiz.Kafka.Net.State;
using Streamiz.Kafka.Net.State.Supplier;
using Streamiz.Kafka.Net.Stream;
using StreamizTopology = Streamiz.Kafka.Net.Stream.Topology;

namespace Pipeline.Processor.Topology;

/// <summary>
/// The feed topology as a pure function of its options:
/// <code>
/// social.follows ─► gate ─┬─► dead letters
///                         └─► re-key by followee ─► repartition ─┐
/// social.posts   ─► gate ─┬─► dead letters                        ├─► author stage ─► repartition by recipient ─► recipient stage ─► feed.updates
///                         └─► key by author ─────────────────────┘   [follower-index,                           [feed-entries, feed-index,
///                                                                      recent-posts, post-ledger]                 feed-heads]
/// </code>
/// The author stage knows who follows whom and what each author posted; the recipient stage knows what each
/// user's feed holds. Each decides from its own state, so retractions and deduplication are exact. The first
/// processor after every source skips records its task already applied (<see cref="SourcePositions"/>).
/// </summary>
public static class FeedTopology
{
    /// <summary>Follows re-keyed by followee: "{applicationId}-follows-by-followee-repartition".</summary>
    public const string FollowsByFollowee = "follows-by-followee";

    /// <summary>Feed commands keyed by recipient: "{applicationId}-updates-by-recipient-repartition".</summary>
    public const string UpdatesByRecipient = "updates-by-recipient";

    /// <param name="skipRedeliveries">
    /// Consult <see cref="SourcePositions"/>. Always on in a deployment; off only under Streamiz's
    /// TopologyTestDriver, which numbers records per test publisher rather than per topic partition, so its offsets
    /// repeat and are no positions.
    /// </param>
    public static StreamizTopology Build(ProcessorOptions options, ProcessorMetrics metrics, bool skipRedeliveries = true)
    {
        var builder = new StreamBuilder();
        var strings = new StringSerDes();
        var longs = new Int64SerDes();
        var posts = new ProtobufSerDes<Post>();
        var maxBodyBytes = options.MaxPostBodyBytes;
        var flushOnCommit = options.Guarantee != DeliveryGuarantee.ExactlyOnce;
        IKeyValueBytesStoreSupplier Persistent(string name) => new CommitFlushStore.Supplier(name, flushOnCommit);

        builder.AddStateStore(Stores.KeyValueStoreBuilder(Persistent(StoreNames.FollowerIndex), strings, longs));
        builder.AddStateStore(Stores.KeyValueStoreBuilder(Persistent(StoreNames.RecentPosts), strings, posts));
        builder.AddStateStore(Stores.KeyValueStoreBuilder(Persistent(StoreNames.PostLedger), strings, longs));
        builder.AddStateStore(Stores.KeyValueStoreBuilder(Persistent(StoreNames.FeedEntries), strings, posts));
        builder.AddStateStore(Stores.KeyValueStoreBuilder(Persistent(StoreNames.FeedIndex), strings, longs));
        builder.AddStateStore(Stores.KeyValueStoreBuilder(Persistent(StoreNames.FeedHeads), strings, new FeedHeadSerDes()));

        // Source positions are rewritten for every record; the cache turns that into one changelog write per commit.
        foreach (var positions in (string[])[StoreNames.FollowsPositions, StoreNames.AuthorPositions, StoreNames.RecipientPositions])
        {
            builder.AddStateStore(Stores.KeyValueStoreBuilder(Persistent(positions), strings, longs).WithCachingEnabled());
        }

        string Positions(string store) => skipRedeliveries ? store : "";
        string[] Connected(params string[] stores) => [.. stores.Where(store => store.Length > 0)];

        var follows = Admit(builder, FeedTopics.Follows, InputContract.AdmitFollow, metrics, "follows", Positions(StoreNames.FollowsPositions))
            .MapValues((admitted, _) => admitted.Follow!)
            .SelectKey((_, follow, _) => follow.FolloweeId)
            .Repartition(Repartitioned<string, FollowEvent>.As(FollowsByFollowee)
                .WithKeySerdes(strings)
                .WithValueSerdes(new ProtobufSerDes<FollowEvent>()))
            .Transform(
                TransformerBuilder.New<string, FollowEvent, string, FollowEvent>().Transformer<RedeliveryGuard<FollowEvent>>(metrics, Positions(StoreNames.AuthorPositions)).Build(),
                "follows-by-followee-guard",
                Connected(Positions(StoreNames.AuthorPositions)))
            .MapValues((follow, _) => AuthorEvent.Of(follow));

        // Posts arrive keyed by author and stay in their partition: social.posts and the repartition topic have
        // the same partition count and partitioner, so an author's posts and followers meet in one task.
        var authoredPosts = Admit(builder, FeedTopics.Posts, (key, value) => InputContract.AdmitPost(key, value, maxBodyBytes), metrics, "posts", Positions(StoreNames.AuthorPositions))
            .SelectKey((_, admitted, _) => admitted.Post!.AuthorId);

        follows.Merge(authoredPosts)
            .Transform(
                TransformerBuilder.New<string, AuthorEvent, string, FeedCommand>().Transformer<AuthorStage>(metrics, options.BackfillSize, options.TopicPartitions).Build(),
                "author-stage",
                StoreNames.FollowerIndex,
                StoreNames.RecentPosts,
                StoreNames.PostLedger)
            .Repartition(Repartitioned<string, FeedCommand>.As(UpdatesByRecipient)
                .WithKeySerdes(strings)
                .WithValueSerdes(new ProtobufSerDes<FeedCommand>())
                .WithStreamPartitioner(new RecipientPartitioner(options.TopicPartitions)))
            .Transform(
                TransformerBuilder.New<string, FeedCommand, string, FeedUpdate>().Transformer<RecipientStage>(metrics, options.FeedSize, Positions(StoreNames.RecipientPositions)).Build(),
                "recipient-stage",
                Connected(StoreNames.FeedEntries, StoreNames.FeedIndex, StoreNames.FeedHeads, Positions(StoreNames.RecipientPositions)))
            .To(FeedTopics.FeedUpdates, strings, new ProtobufSerDes<FeedUpdate>());

        return builder.Build();
    }

    /// <summary>Source → gate; rejected records go to the dead-letter topic, admitted ones continue.</summary>
    private static IKStream<byte[], AuthorEvent> Admit(
        StreamBuilder builder, string topic, Func<byte[]?, byte[]?, Admission> admit, ProcessorMetrics metrics, string name, string positionsStore)
    {
        var bytes = new ByteArraySerDes();
        var branches = builder.Stream(topic, bytes, bytes)
            .Transform(TransformerBuilder.New<byte[], byte[], byte[], Admission>().Transformer<InputGate>(admit, metrics, positionsStore, topic).Build(), $"{name}-gate", positionsStore.Length == 0 ? [] : [positionsStore])
            .Branch((_, admission, _) => admission.IsRejected, (_, _, _) => true);

        branches[0].MapValues((admission, _) => admission.OriginalValue!).To(FeedTopics.DeadLetters, bytes, bytes);
        return branches[1].MapValues((admission, _) => admission.Admitted!);
    }
}
