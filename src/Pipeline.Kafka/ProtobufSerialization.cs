using Confluent.Kafka;
using Google.Protobuf;

namespace Pipeline.Kafka;

/// <summary>Confluent (de)serializers for the feed.v1 protobuf records (no schema registry framing).</summary>
public sealed class ProtobufSerializer<T> : ISerializer<T>
    where T : IMessage<T>
{
    public static readonly ProtobufSerializer<T> Instance = new();

    public byte[] Serialize(T data, SerializationContext context) => data.ToByteArray();
}

public sealed class ProtobufDeserializer<T> : IDeserializer<T>
    where T : IMessage<T>, new()
{
    public static readonly ProtobufDeserializer<T> Instance = new();

    private static readonly MessageParser<T> Parser = new(() => new T());

    public T Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context) =>
        isNull ? throw new InvalidDataException($"{typeof(T).Name} record on {context.Topic} has a null value") : Parser.ParseFrom(data);
}
