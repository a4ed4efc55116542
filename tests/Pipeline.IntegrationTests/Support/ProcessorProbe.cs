using System.Text;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Pipeline.Kafka;
using Pipeline.Processor;
using Pipeline.Processor.Topology;

namespace Pipeline.IntegrationTests.Support;

/// <summary>
/// Waits for an in-process processor to reach a point, and when it does not, fails with what an operator would look
/// at: the stream state, the counters, each topic's end offsets against the group's committed offsets, and the
/// recent log lines.
/// </summary>
public static class ProcessorProbe
{
    /// <summary>Polls <paramref name="condition"/> until true; on timeout throws a <see cref="TimeoutException"/> describing the processor.</summary>
    public static async Task WaitUntilAsync(IServiceProvider processor, string bootstrapServers, RecentLogs? logs, Func<bool> condition, string what, CancellationToken cancellationToken, Func<string>? detail = null)
    {
        try
        {
            while (!condition())
            {
                await Task.Delay(20, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"Timed out waiting for {what}.{Environment.NewLine}{detail?.Invoke()}{Environment.NewLine}{Describe(processor, bootstrapServers, logs)}");
        }
    }

    public static string Describe(IServiceProvider processor, string bootstrapServers, RecentLogs? logs)
    {
        var report = new StringBuilder();
        var service = processor.GetRequiredService<FeedProcessorService>();
        var metrics = processor.GetRequiredService<ProcessorMetrics>();
        var options = processor.GetRequiredService<IOptions<ProcessorOptions>>().Value;
        report.AppendLine($"processor state {service.State}; posts in {metrics.PostsIn}, follows in {metrics.FollowsIn}, updates out {metrics.FeedUpdatesOut}, dead letters {metrics.DeadLetters}, redeliveries skipped {metrics.RedeliveriesSkipped}");
        try
        {
            var topics = new[]
            {
                FeedTopics.Follows,
                FeedTopics.Posts,
                $"{options.ApplicationId}-{FeedTopology.FollowsByFollowee}-repartition",
                $"{options.ApplicationId}-{FeedTopology.UpdatesByRecipient}-repartition",
                FeedTopics.FeedUpdates,
            };
            using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).SetLogHandler((_, _) => { }).Build();
            using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = options.ApplicationId, EnableAutoCommit = false })
                .SetLogHandler((_, _) => { })
                .Build();
            var metadata = admin.GetMetadata(TimeSpan.FromSeconds(5));
            foreach (var topic in topics)
            {
                var partitions = metadata.Topics.SingleOrDefault(t => t.Topic == topic)?.Partitions.Select(p => new TopicPartition(topic, p.PartitionId)).ToList() ?? [];
                var committed = consumer.Committed(partitions, TimeSpan.FromSeconds(5)).ToDictionary(c => c.Partition.Value, c => c.Offset);
                var line = string.Join(", ", partitions.Select(p => $"p{p.Partition.Value} end {consumer.QueryWatermarkOffsets(p, TimeSpan.FromSeconds(5)).High.Value} committed {committed[p.Partition.Value]}"));
                report.AppendLine($"  {topic}: {line}");
            }
        }
        catch (KafkaException ex)
        {
            report.AppendLine($"  (could not read offsets: {ex.Error.Reason})");
        }

        if (logs is not null)
        {
            report.AppendLine("recent log lines:").AppendLine(logs.Dump());
        }

        return report.ToString();
    }
}
