using System.Diagnostics;
using Confluent.Kafka;
using Pipeline.Kafka.Embedded;

namespace Pipeline.IntegrationTests.Embedded;

/// <summary>The fault-injection hooks reliability tests build on: outages, injected errors, latency.</summary>
public sealed class EmbeddedKafkaFaultInjectionTests
{
    private const short ProduceApiKey = 0;
    private static readonly TimeSpan Timeout = KafkaTestSupport.Timeout;

    [Fact]
    public async Task BrokerDownThenUp_ProduceDuringOutageIsDeliveredAfterRecovery()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        const string Topic = "outage";
        cluster.CreateTopic(Topic, 1, 1);
        using var producer = KafkaTestSupport.CreateProducer(cluster.BootstrapServers, config => config.MessageTimeoutMs = 30_000);
        await producer.ProduceAsync(Topic, new Message<string, string> { Key = "k", Value = "before" }).WaitAsync(Timeout);

        cluster.SetBrokerDown(1);
        var duringOutage = producer.ProduceAsync(Topic, new Message<string, string> { Key = "k", Value = "during" });
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        Assert.False(duringOutage.IsCompleted, "a produce must not complete while the only broker is down");

        cluster.SetBrokerUp(1);
        var result = await duringOutage.WaitAsync(Timeout);

        Assert.Equal(PersistenceStatus.Persisted, result.Status);
        Assert.Equal(1, result.Offset.Value);
        var consumed = await KafkaTestSupport.ConsumeAsync(cluster.BootstrapServers, Topic, 2, Timeout).WaitAsync(Timeout + Timeout);
        Assert.Equal(["before", "during"], consumed.Select(record => record.Message.Value));
    }

    [Fact]
    public async Task PushedProduceErrors_FailDeliveryWhenRetriesAreOff()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        cluster.CreateTopic("faults", 1, 1);
        using var producer = KafkaTestSupport.CreateProducer(cluster.BootstrapServers, config =>
        {
            config.EnableIdempotence = false;
            config.MessageSendMaxRetries = 0;
        });

        cluster.PushRequestErrors(ProduceApiKey, ErrorCode.NotEnoughReplicas);
        var failure = await Assert.ThrowsAsync<ProduceException<string, string>>(
            () => producer.ProduceAsync("faults", new Message<string, string> { Key = "k", Value = "v" }).WaitAsync(Timeout));

        Assert.Equal(ErrorCode.NotEnoughReplicas, failure.Error.Code);
    }

    [Fact]
    public async Task PushedRetriableProduceErrors_AreRetriedAndDeliveredExactlyOnce()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        cluster.CreateTopic("faults", 1, 1);
        using var producer = KafkaTestSupport.CreateProducer(cluster.BootstrapServers, config => config.RetryBackoffMs = 20);

        cluster.PushRequestErrors(ProduceApiKey, ErrorCode.NotEnoughReplicas, ErrorCode.RequestTimedOut, ErrorCode.NotLeaderForPartition);
        var result = await producer.ProduceAsync("faults", new Message<string, string> { Key = "k", Value = "survivor" }).WaitAsync(Timeout);

        Assert.Equal(PersistenceStatus.Persisted, result.Status);
        Assert.Equal(0, result.Offset.Value);
        Assert.Equal(1, await KafkaTestSupport.HighWatermarkAsync(cluster.BootstrapServers, new TopicPartition("faults", 0)).WaitAsync(Timeout));
        var consumed = await KafkaTestSupport.ConsumeAsync(cluster.BootstrapServers, "faults", 1, Timeout).WaitAsync(Timeout + Timeout);
        Assert.Equal(["survivor"], consumed.Select(record => record.Message.Value));
    }

    [Fact]
    public async Task BrokerRtt_DelaysProduceAcknowledgements()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = 0 });
        cluster.CreateTopic("slow", 1, 1);
        using var producer = KafkaTestSupport.CreateProducer(cluster.BootstrapServers);
        await producer.ProduceAsync("slow", new Message<string, string> { Key = "k", Value = "warm-up" }).WaitAsync(Timeout);

        cluster.SetBrokerRtt(1, TimeSpan.FromMilliseconds(400));
        var stopwatch = Stopwatch.StartNew();
        await producer.ProduceAsync("slow", new Message<string, string> { Key = "k", Value = "slow" }).WaitAsync(Timeout);
        var slow = stopwatch.Elapsed;

        cluster.SetBrokerRtt(1, TimeSpan.Zero);
        stopwatch.Restart();
        await producer.ProduceAsync("slow", new Message<string, string> { Key = "k", Value = "fast" }).WaitAsync(Timeout);
        var fast = stopwatch.Elapsed;

        Assert.InRange(slow, TimeSpan.FromMilliseconds(350), Timeout);
        Assert.True(fast < slow, $"expected the produce after removing the RTT ({fast}) to be faster than with it ({slow})");
    }
}
