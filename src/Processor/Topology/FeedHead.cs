using System.Buffers.Binary;
using Confluent.Kafka;
using Streamiz.Kafka.Net.SerDes;

namespace Pipeline.Processor.Topology;

/// <summary>
/// One user's stored feed at a glance, kept in one value so that an add reads and writes it once instead of
/// counting entries and seeking the newest one: the feed holds <see cref="Size"/> entries, all with sequences in
/// [<see cref="Floor"/>, <see cref="Next"/>). Sequences grow while the feed holds anything, so its entries are in
/// arrival order; the floor moves past entries as they leave the front, so finding the oldest does not seek over
/// the deleted ones. Sequences need only be unique among held entries, so an emptied feed starts over at 0.
/// </summary>
/// <remarks>The store answers <c>default</c> for a user without a feed: size 0, sequences from 0.</remarks>
public readonly record struct FeedHead(long Size, long Floor, long Next)
{
    /// <summary>The head after an entry was appended at <see cref="Next"/>.</summary>
    public FeedHead Appended() => this with { Size = Size + 1, Next = Next + 1 };

    /// <summary>The head after the entry at <paramref name="sequence"/> left; an emptied feed starts over at 0.</summary>
    public FeedHead Removed(long sequence) =>
        Size <= 1 ? default : this with { Size = Size - 1, Floor = sequence == Floor ? Floor + 1 : Floor };

    /// <summary>The head after its oldest entry, at <paramref name="sequence"/>, left: nothing below it remains.</summary>
    public FeedHead DroppedOldest(long sequence) =>
        Size <= 1 ? default : this with { Size = Size - 1, Floor = sequence + 1 };
}

/// <summary>Fixed 24 bytes, big-endian: size, floor, next.</summary>
public sealed class FeedHeadSerDes : AbstractSerDes<FeedHead>
{
    private const int Length = 3 * sizeof(long);

    public override byte[] Serialize(FeedHead data, SerializationContext context)
    {
        var bytes = new byte[Length];
        BinaryPrimitives.WriteInt64BigEndian(bytes, data.Size);
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(8), data.Floor);
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(16), data.Next);
        return bytes;
    }

    public override FeedHead Deserialize(byte[] data, SerializationContext context)
    {
        if (data is null)
        {
            return default;
        }

        if (data.Length != Length)
        {
            throw new InvalidOperationException($"A feed head is {Length} bytes; got {data.Length}. Was the store written by another version of the processor?");
        }

        return new FeedHead(BinaryPrimitives.ReadInt64BigEndian(data), BinaryPrimitives.ReadInt64BigEndian(data.AsSpan(8)), BinaryPrimitives.ReadInt64BigEndian(data.AsSpan(16)));
    }
}
