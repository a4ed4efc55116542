namespace Pipeline.Kafka.Topics;

/// <summary>A topic the pipeline needs. Retention null means the broker default.</summary>
public sealed record TopicSpec(string Name, int Partitions, short ReplicationFactor, TimeSpan? Retention, bool Compacted);
