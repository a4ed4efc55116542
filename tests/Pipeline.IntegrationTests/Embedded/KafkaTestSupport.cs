using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;

namespace Pipeline.IntegrationTests.Embedded;

/// <summary>Small, bounded helpers for talking to an embedded cluster from tests.</summary>
internal static class KafkaTestSupport
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    public static IProducer<string, string> CreateProducer(string bootstrapServers, Action<ProducerConfig>? configure = null)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            EnableIdempotence = true,
            LingerMs = 5,
            // Why: librdkafka backs off up to 10 s between reconnects by default, longer than any test should wait.
            ReconnectBackoffMs = 50,
            ReconnectBackoffMaxMs = 250,
        };
        configure?.Invoke(config);
        return new ProducerBuilder<string, string>(config).Build();
    }

    /// <summary>Consumes with a fresh consumer group until <paramref name="count"/> records arrived or the timeout passed.</summary>
    public static Task<List<ConsumeResult<string, string>>> ConsumeAsync(string bootstrapServers, string topic, int count, TimeSpan timeout) =>
        Task.Run(() =>
        {
            var config = new ConsumerConfig
            {
                BootstrapServers = bootstrapServers,
                GroupId = $"test-{Guid.NewGuid():N}",
                AutoOffsetReset = AutoOffsetReset.Earliest,
                EnableAutoCommit = false,
                ReconnectBackoffMs = 50,
                ReconnectBackoffMaxMs = 250,
            };
            var results = new List<ConsumeResult<string, string>>();
            using var consumer = new ConsumerBuilder<string, string>(config).Build();
            consumer.Subscribe(topic);
            var deadline = DateTime.UtcNow + timeout;
            while (results.Count < count && DateTime.UtcNow < deadline)
            {
                var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
                if (result is { IsPartitionEOF: false, Message: not null })
                {
                    results.Add(result);
                }
            }

            consumer.Close();
            return results;
        });

    /// <summary>The offset the next record on <paramref name="partition"/> will get, i.e. how many were ever written.</summary>
    public static Task<long> HighWatermarkAsync(string bootstrapServers, TopicPartition partition) =>
        Task.Run(() =>
        {
            using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = "watermarks" }).Build();
            return consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10)).High.Value;
        });

    /// <summary>Finds <paramref name="count"/> consecutive loopback ports that are free right now (never the 9092 range).</summary>
    public static int FindFreeConsecutivePorts(int count)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            int basePort;
            using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                basePort = ((IPEndPoint)probe.LocalEndPoint!).Port;
            }

            if (basePort + count > 65535 || (basePort <= 9100 && basePort + count >= 9092))
            {
                continue;
            }

            var sockets = new List<Socket>();
            try
            {
                for (var offset = 0; offset < count; offset++)
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    sockets.Add(socket);
                    socket.Bind(new IPEndPoint(IPAddress.Loopback, basePort + offset));
                }

                return basePort;
            }
            catch (SocketException)
            {
                // Taken: try another base.
            }
            finally
            {
                sockets.ForEach(socket => socket.Dispose());
            }
        }

        throw new InvalidOperationException($"No {count} consecutive free loopback ports found.");
    }

    public static bool CanBind(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
