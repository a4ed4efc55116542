namespace Pipeline.Kafka.Embedded;

/// <summary>Settings for <see cref="EmbeddedKafkaCluster"/>.</summary>
public sealed class EmbeddedKafkaOptions
{
    /// <summary>Number of mock brokers; broker ids are 1..BrokerCount.</summary>
    public int BrokerCount { get; set; } = 1;

    /// <summary>
    /// 0 (tests): every broker listens on a random loopback port and clients use those ports directly, so several
    /// clusters can run side by side. Non-zero (development): broker N is advertised as 127.0.0.1:(Port + N - 1)
    /// and reachable there from other processes through a loopback forwarder.
    /// </summary>
    public int Port { get; set; }

    /// <summary>
    /// Partition count used by <see cref="EmbeddedKafkaCluster.CreateTopic"/> when it is asked for 0 partitions.
    /// It does not change the mock's own auto-create default, which librdkafka hard-codes to 4.
    /// </summary>
    public int DefaultPartitions { get; set; } = 3;
}
