using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Pipeline.Kafka;

namespace Pipeline.StreamEdge.Ingest;

/// <summary>Appends validated input events to the social.* topics with an idempotent, acks=all producer.</summary>
public sealed class FeedEventPublisher : IDisposable
{
    private readonly IProducer<string, byte[]> _producer;

    public FeedEventPublisher(IOptions<ClientConfig> clientConfig)
    {
        var config = new ProducerConfig(clientConfig.Value.Copy())
        {
            Acks = Acks.All,
            EnableIdempotence = true,
            LingerMs = 2,

            // Java's default partitioner: the processor reads posts in the partition their author hashes to.
            Partitioner = Partitioner.Murmur2Random,
            ClientId = $"stream-edge-ingest-{Environment.MachineName}",
        };
        _producer = new ProducerBuilder<string, byte[]>(config).Build();
    }

    public Task<DeliveryResult<string, byte[]>> PublishAsync(string topic, string key, IMessage value, CancellationToken cancellationToken) =>
        _producer.ProduceAsync(topic, new Message<string, byte[]> { Key = key, Value = value.ToByteArray() }, cancellationToken);

    public void Dispose()
    {
        _producer.Flush(TimeSpan.FromSeconds(5));
        _producer.Dispose();
    }
}
