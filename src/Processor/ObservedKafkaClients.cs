using Confluent.Kafka;
using Streamiz.Kafka.Net.Kafka;

namespace Pipeline.Processor;

/// <summary>
/// The client builder Streamiz is given: its admin clients observe their repartition purges
/// (<see cref="RepartitionPurge"/>) and its producers time their transaction commits and flush without librdkafka's 10 ms steps (<see cref="StreamThreadProducer"/>).
/// </summary>
public sealed class ObservedKafkaClients(RepartitionPurge purge, ProcessorMetrics metrics) : DefaultKafkaClientBuilder
{
    public override AdminClientBuilder GetAdminBuilder(AdminClientConfig config) => purge.Builder(config);

    public override ProducerBuilder<byte[], byte[]> GetProducerBuilder(ProducerConfig config) => new TimingBuilder(config, metrics);

    private sealed class TimingBuilder(ProducerConfig config, ProcessorMetrics metrics) : ProducerBuilder<byte[], byte[]>(config)
    {
        public override IProducer<byte[], byte[]> Build() => new StreamThreadProducer(base.Build(), metrics);
    }
}
