using System.Text;
using Confluent.Kafka;
using Feed.V1;
using Google.Protobuf;
using Pipeline.Kafka;

namespace Pipeline.IntegrationTests.Pipeline;

[Collection(PipelineTestGroup.Name)]
public sealed class DeadLetterFlowTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly PipelineFixture _pipeline;

    public DeadLetterFlowTests(PipelineFixture pipeline)
    {
        _pipeline = pipeline;
    }

    [Fact]
    public async Task MalformedRecordOnTheBroker_LandsInDeadLettersWithItsSource_AndValidPostsStillFlow()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var (author, follower) = ($"dlq-author-{run}", $"dlq-follower-{run}");
        using var timeout = new CancellationTokenSource(Timeout);
        await _pipeline.FollowAsync(follower, author, timeout.Token);
        using var subscription = await _pipeline.SubscribeAsync(follower, timeout.Token);

        // A producer outside the ingest API writes garbage between two valid posts.
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = _pipeline.Stack.BootstrapServers, Partitioner = Partitioner.Murmur2Random }).Build();
        var garbage = new byte[] { 0x0a, 0xff, 0xff, 0x01 };
        await producer.ProduceAsync(FeedTopics.Posts, ValidPost(author, $"before-{run}"), timeout.Token);
        var bad = await producer.ProduceAsync(FeedTopics.Posts, new Message<string, byte[]> { Key = author, Value = garbage }, timeout.Token);
        await producer.ProduceAsync(FeedTopics.Posts, ValidPost(author, $"after-{run}"), timeout.Token);

        var received = new List<string>();
        while (received.Count < 2)
        {
            received.Add((await subscription.ResponseStream.NextUpdateAsync(timeout.Token)).Added.Post.PostId);
        }

        Assert.Equal([$"before-{run}", $"after-{run}"], received);

        using var consumer = new ConsumerBuilder<string, byte[]>(new ConsumerConfig
        {
            BootstrapServers = _pipeline.Stack.BootstrapServers,
            GroupId = $"dlq-reader-{run}",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            IsolationLevel = IsolationLevel.ReadCommitted,
        }).Build();
        consumer.Subscribe(FeedTopics.DeadLetters);
        ConsumeResult<string, byte[]>? deadLetter = null;
        while (deadLetter is null && !timeout.IsCancellationRequested)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result?.Message?.Key == author)
            {
                deadLetter = result;
            }
        }

        consumer.Close();
        Assert.NotNull(deadLetter);
        Assert.Equal(garbage, deadLetter.Message.Value);
        var headers = deadLetter.Message.Headers.ToDictionary(h => h.Key, h => Encoding.UTF8.GetString(h.GetValueBytes()));
        Assert.Equal(FeedTopics.Posts, headers[DeadLetterHeaders.SourceTopic]);
        Assert.Equal(bad.Partition.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), headers[DeadLetterHeaders.SourcePartition]);
        Assert.Equal(bad.Offset.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), headers[DeadLetterHeaders.SourceOffset]);
        Assert.StartsWith("value is not a valid PostEvent", headers[DeadLetterHeaders.Error], StringComparison.Ordinal);
    }

    private static Message<string, byte[]> ValidPost(string author, string postId) => new()
    {
        Key = author,
        Value = new PostEvent { PostId = postId, AuthorId = author, Action = PostAction.Created, Body = "valid", CreatedAtMs = 1, OccurredAtMs = 1 }.ToByteArray(),
    };
}
