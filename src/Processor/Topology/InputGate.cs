using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Pipeline.Kafka;
using Streamiz.Kafka.Net.Processors.Public;

namespace Pipeline.Processor.Topology;

/// <summary>
/// First processor after each source: skips records it applied already (see <see cref="SourcePositions"/>),
/// admits valid records and turns invalid ones into dead letters that carry the original bytes plus headers naming
/// where they came from and why they were refused.
/// </summary>
public sealed class InputGate : ITransformer<byte[], byte[], byte[], Admission>
{
    private readonly Func<byte[]?, byte[]?, Admission> _admit;
    private readonly ProcessorMetrics _metrics;
    private readonly string _positionsStore;
    private readonly string _topic;
    private SourcePositions _positions = null!;
    private TopicPartition? _input;
    private bool _open;

    /// <summary>
    /// Streamiz builds a prototype with new() and then creates one instance per task through the constructor
    /// taking the parameters given to TransformerBuilder; the prototype never processes a record.
    /// </summary>
    public InputGate()
    {
        _admit = null!;
        _metrics = null!;
        _positionsStore = "";
        _topic = "";
    }

    public InputGate(Func<byte[]?, byte[]?, Admission> admit, ProcessorMetrics metrics, string positionsStore, string topic)
    {
        _admit = admit;
        _metrics = metrics;
        _positionsStore = positionsStore;
        _topic = topic;
    }

    public void Init(ProcessorContext<byte[], Admission> context)
    {
        _positions = SourcePositions.For(context, _positionsStore, _metrics);
        if (_input is null)
        {
            _input = new TopicPartition(_topic, context.Id.Partition);
            _metrics.InputOpened(_input);
        }

        TaskHeartbeat.Start(context, _metrics, ref _open);
    }

    public Record<byte[], Admission> Process(Record<byte[], byte[]> record)
    {
        if (!_positions.Admit(record.TopicPartitionOffset))
        {
            return null!;
        }

        var admission = _admit(record.Key, record.Value);
        if (!admission.IsRejected)
        {
            // Input headers are not part of the contract; dropping them keeps feed updates lean.
            return Record<byte[], Admission>.Create(record.Key, admission, []);
        }

        _metrics.DeadLettered();
        var source = record.TopicPartitionOffset;
        var headers = new Headers();
        foreach (var header in record.Headers ?? [])
        {
            headers.Add(header.Key, header.GetValueBytes());
        }

        headers.Add(DeadLetterHeaders.SourceTopic, Encoding.UTF8.GetBytes(source.Topic));
        headers.Add(DeadLetterHeaders.SourcePartition, Encoding.UTF8.GetBytes(source.Partition.Value.ToString(CultureInfo.InvariantCulture)));
        headers.Add(DeadLetterHeaders.SourceOffset, Encoding.UTF8.GetBytes(source.Offset.Value.ToString(CultureInfo.InvariantCulture)));
        headers.Add(DeadLetterHeaders.Error, Encoding.UTF8.GetBytes(admission.Rejection!));
        return Record<byte[], Admission>.Create(record.Key, admission, headers);
    }

    public void Close()
    {
        if (_input is not null)
        {
            _metrics.InputClosed(_input);
            _input = null;
        }

        TaskHeartbeat.Stop(_metrics, ref _open);
    }
}
