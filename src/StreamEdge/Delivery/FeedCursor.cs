using System.Buffers.Binary;
using System.Buffers.Text;

namespace Pipeline.StreamEdge.Delivery;

/// <summary>
/// Position of an event in feed.updates: partition and offset. Opaque to clients (base64url of a versioned
/// binary form) so the encoding can change without breaking them.
/// </summary>
public readonly record struct FeedCursor(int Partition, long Offset)
{
    private const byte Version = 1;
    private const int Length = 1 + 4 + 8;

    public string Encode()
    {
        Span<byte> bytes = stackalloc byte[Length];
        bytes[0] = Version;
        BinaryPrimitives.WriteInt32BigEndian(bytes[1..], Partition);
        BinaryPrimitives.WriteInt64BigEndian(bytes[5..], Offset);
        return Base64Url.EncodeToString(bytes);
    }

    public static bool TryDecode(string? text, out FeedCursor cursor)
    {
        cursor = default;
        if (string.IsNullOrEmpty(text) || text.Length > 64)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[48];
        if (!Base64Url.TryDecodeFromChars(text, bytes, out var written) || written != Length || bytes[0] != Version)
        {
            return false;
        }

        cursor = new FeedCursor(BinaryPrimitives.ReadInt32BigEndian(bytes[1..]), BinaryPrimitives.ReadInt64BigEndian(bytes[5..]));
        return cursor.Partition >= 0 && cursor.Offset >= 0;
    }
}
