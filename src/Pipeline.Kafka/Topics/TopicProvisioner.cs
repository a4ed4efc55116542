using System.Globalization;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Logging;
using Pipeline.Kafka.Embedded;

namespace Pipeline.Kafka.Topics;

/// <summary>
/// Creates the topics that do not exist yet, with explicit partition counts, so nothing relies on broker-side
/// auto-creation (which on the embedded broker yields 4 partitions and on real clusters the broker default).
/// </summary>
public sealed partial class TopicProvisioner
{
    private static readonly TimeSpan AdminTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan MetadataTimeout = TimeSpan.FromSeconds(10);

    private readonly string _bootstrapServers;
    private readonly EmbeddedKafkaCluster? _embedded;
    private readonly ILogger<TopicProvisioner> _logger;

    /// <param name="bootstrapServers">The cluster to provision; ignored in favour of the embedded cluster's own address when <paramref name="embedded"/> is set.</param>
    /// <param name="embedded">When set, topics are created through the mock cluster API, because the mock implements no admin requests.</param>
    public TopicProvisioner(string bootstrapServers, EmbeddedKafkaCluster? embedded, ILogger<TopicProvisioner> logger)
    {
        if (embedded is null)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(bootstrapServers);
        }

        ArgumentNullException.ThrowIfNull(logger);
        _bootstrapServers = embedded?.BootstrapServers ?? bootstrapServers;
        _embedded = embedded;
        _logger = logger;
    }

    public async Task EnsureAsync(IEnumerable<TopicSpec> topics, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topics);
        var specs = Validate(topics);
        if (specs.Count == 0)
        {
            return;
        }

        if (_embedded is not null)
        {
            await Task.Run(() => EnsureEmbedded(_embedded, specs), cancellationToken);
        }
        else
        {
            await EnsureWithAdminClientAsync(specs, cancellationToken);
        }
    }

    private static List<TopicSpec> Validate(IEnumerable<TopicSpec> topics)
    {
        var byName = new Dictionary<string, TopicSpec>(StringComparer.Ordinal);
        foreach (var spec in topics)
        {
            ArgumentNullException.ThrowIfNull(spec, nameof(topics));
            ArgumentException.ThrowIfNullOrWhiteSpace(spec.Name, nameof(topics));
            if (spec.Partitions < 1 || spec.ReplicationFactor < 1)
            {
                throw new ArgumentException(
                    $"Topic '{spec.Name}' needs at least 1 partition and replication factor 1 (got {spec.Partitions}, {spec.ReplicationFactor}).", nameof(topics));
            }

            if (byName.TryGetValue(spec.Name, out var existing) && existing != spec)
            {
                throw new ArgumentException($"Topic '{spec.Name}' is listed twice with different settings.", nameof(topics));
            }

            byName[spec.Name] = spec;
        }

        return [.. byName.Values];
    }

    private void EnsureEmbedded(EmbeddedKafkaCluster embedded, List<TopicSpec> specs)
    {
        var existing = new List<TopicSpec>();
        foreach (var spec in specs)
        {
            if (embedded.TryCreateTopic(spec.Name, spec.Partitions, spec.ReplicationFactor))
            {
                LogCreated(spec.Name, spec.Partitions, spec.ReplicationFactor, spec.Retention, spec.Compacted, "embedded broker");
                if (spec.Retention is not null || spec.Compacted)
                {
                    LogConfigIgnoredByEmbedded(spec.Name);
                }
            }
            else
            {
                existing.Add(spec);
            }
        }

        if (existing.Count > 0)
        {
            using var admin = BuildAdminClient();
            VerifyExisting(existing, PartitionCounts(admin));
        }
    }

    private async Task EnsureWithAdminClientAsync(List<TopicSpec> specs, CancellationToken cancellationToken)
    {
        using var admin = BuildAdminClient();

        // Why look first: only missing topics reach CreateTopics, so a cluster that already has everything
        // (including the embedded broker, which has no CreateTopics API) needs no admin rights at all.
        var before = await Task.Run(() => PartitionCounts(admin), cancellationToken);
        var missing = specs.Where(spec => !before.ContainsKey(spec.Name)).ToList();
        VerifyExisting([.. specs.Where(spec => before.ContainsKey(spec.Name))], before);
        if (missing.Count == 0)
        {
            return;
        }

        var byName = missing.ToDictionary(spec => spec.Name, StringComparer.Ordinal);
        IEnumerable<(string Topic, Error Error)> results;
        try
        {
            await admin.CreateTopicsAsync(
                    missing.Select(ToSpecification),
                    new CreateTopicsOptions { RequestTimeout = AdminTimeout, OperationTimeout = AdminTimeout })
                .WaitAsync(cancellationToken);
            results = missing.Select(spec => (spec.Name, new Error(ErrorCode.NoError)));
        }
        catch (CreateTopicsException ex)
        {
            results = ex.Results.Select(result => (result.Topic, result.Error));
        }

        var createdConcurrently = new List<TopicSpec>();
        var failures = new List<string>();
        foreach (var (topic, error) in results)
        {
            var spec = byName[topic];
            switch (error.Code)
            {
                case ErrorCode.NoError:
                    LogCreated(topic, spec.Partitions, spec.ReplicationFactor, spec.Retention, spec.Compacted, "admin API");
                    break;
                case ErrorCode.TopicAlreadyExists:
                    createdConcurrently.Add(spec);
                    break;
                default:
                    failures.Add($"{topic}: {error.Code} {error.Reason}");
                    break;
            }
        }

        if (failures.Count > 0)
        {
            throw new InvalidOperationException($"Could not create Kafka topics on {_bootstrapServers}: {string.Join("; ", failures)}");
        }

        if (createdConcurrently.Count > 0)
        {
            VerifyExisting(createdConcurrently, await Task.Run(() => PartitionCounts(admin), cancellationToken));
        }
    }

    /// <remarks>
    /// Lists all topics rather than asking for each by name: a named Metadata request from a librdkafka admin
    /// client (a producer underneath, allow.auto.create.topics=true) auto-creates missing topics on brokers that
    /// permit it, including the embedded one, with the broker's default partition count.
    /// </remarks>
    private static Dictionary<string, int> PartitionCounts(IAdminClient admin) =>
        admin.GetMetadata(MetadataTimeout).Topics
            .Where(topic => topic.Error.Code == ErrorCode.NoError)
            .ToDictionary(topic => topic.Topic, topic => topic.Partitions.Count, StringComparer.Ordinal);

    private void VerifyExisting(List<TopicSpec> existing, Dictionary<string, int> partitionsByTopic)
    {
        foreach (var spec in existing)
        {
            if (!partitionsByTopic.TryGetValue(spec.Name, out var actual))
            {
                LogExistingNotInMetadata(spec.Name);
            }
            else if (actual != spec.Partitions)
            {
                LogPartitionMismatch(spec.Name, actual, spec.Partitions);
            }
            else
            {
                LogAlreadyExists(spec.Name, actual);
            }
        }
    }

    private IAdminClient BuildAdminClient()
    {
        var config = new AdminClientConfig { BootstrapServers = _bootstrapServers };
        return new AdminClientBuilder(config)
            .SetLogHandler((_, message) => LogAdminClient(message.Facility, message.Message))
            .Build();
    }

    private static TopicSpecification ToSpecification(TopicSpec spec)
    {
        var configs = new Dictionary<string, string>(StringComparer.Ordinal);
        if (spec.Retention is { } retention)
        {
            // Why -1: Kafka's spelling of "keep forever", which callers express as Timeout.InfiniteTimeSpan.
            var milliseconds = retention < TimeSpan.Zero ? -1 : (long)retention.TotalMilliseconds;
            configs["retention.ms"] = milliseconds.ToString(CultureInfo.InvariantCulture);
        }

        if (spec.Compacted)
        {
            configs["cleanup.policy"] = "compact";
        }

        return new TopicSpecification
        {
            Name = spec.Name,
            NumPartitions = spec.Partitions,
            ReplicationFactor = spec.ReplicationFactor,
            Configs = configs,
        };
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Created topic {Topic}: {Partitions} partition(s), replication factor {ReplicationFactor}, retention {Retention}, compacted {Compacted} (via {Path})")]
    private partial void LogCreated(string topic, int partitions, short replicationFactor, TimeSpan? retention, bool compacted, string path);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Topic {Topic} already exists with {Partitions} partition(s)")]
    private partial void LogAlreadyExists(string topic, int partitions);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Topic {Topic} already exists with {ActualPartitions} partition(s) but {ExpectedPartitions} were requested; keys will map to different partitions than the configuration assumes. Recreate the topic or fix the configuration.")]
    private partial void LogPartitionMismatch(string topic, int actualPartitions, int expectedPartitions);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Topic {Topic} was reported as existing but is missing from cluster metadata; its partition count could not be verified")]
    private partial void LogExistingNotInMetadata(string topic);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Topic {Topic}: the embedded broker ignores retention and compaction settings")]
    private partial void LogConfigIgnoredByEmbedded(string topic);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Kafka admin client [{Facility}] {Text}")]
    private partial void LogAdminClient(string facility, string text);
}
