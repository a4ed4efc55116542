using Confluent.Kafka;
using Google.Protobuf;
using Streamiz.Kafka.Net.SerDes;

namespace Pipeline.Processor.Topology;

/// <summary>Streamiz serdes for a feed.v1 protobuf message; null stays null (tombstones).</summary>
public sealed class ProtobufSerDes<T> : AbstractSerDes<T>
    where T : class, IMessage<T>, new()
{
    private static readonly MessageParser<T> Parser = new(() => new T());

    public override byte[] Serialize(T data, SerializationContext context) => data?.ToByteArray()!;

    public override T Deserialize(byte[] data, SerializationContext context) => data is null ? null! : Parser.ParseFrom(data);
}
