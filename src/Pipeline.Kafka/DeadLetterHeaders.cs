namespace Pipeline.Kafka;

/// <summary>Headers the processor adds to a record in pipeline.dead-letters (values are UTF-8 text).</summary>
public static class DeadLetterHeaders
{
    public const string SourceTopic = "dlq.source.topic";
    public const string SourcePartition = "dlq.source.partition";
    public const string SourceOffset = "dlq.source.offset";
    public const string Error = "dlq.error";
}
