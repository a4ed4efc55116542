using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace Pipeline.StreamEdge.Delivery;

public enum CursorKind : byte
{
    /// <summary>Right after the update at (partition, offset) of feed.updates; offset −1 means before the user's first update.</summary>
    Position = 1,

    /// <summary>Inside a snapshot: resuming from it restarts the snapshot (with a reset, the client drops what it got).</summary>
    InSnapshot = 2,
}

/// <summary>
/// A position in one user's feed: the partition and offset of an update in feed.updates. Offsets are the same on
/// every edge instance, so a cursor from one edge resumes on any other.
/// </summary>
public readonly record struct FeedCursor(CursorKind Kind, int Partition, long Offset)
{
    public static FeedCursor BeforeFirst { get; } = new(CursorKind.Position, -1, -1);

    public static FeedCursor InSnapshot { get; } = new(CursorKind.InSnapshot, -1, -1);

    public static FeedCursor At(int partition, long offset) => new(CursorKind.Position, partition, offset);
}

public enum CursorVerdict
{
    Valid,

    /// <summary>Not a cursor this service issued (garbage, truncated, forged or signed with another key).</summary>
    Malformed,

    /// <summary>A genuine cursor of another user's feed.</summary>
    OtherUser,
}

/// <summary>
/// Encodes cursors as opaque, signed, user-bound strings: base64url of
/// version · kind · partition · offset · user tag (8 bytes) · HMAC-SHA256 (16 bytes). The signature stops forged
/// positions; the user tag lets the edge tell "someone else's cursor" (PERMISSION_DENIED) from garbage.
/// </summary>
public sealed class CursorCodec
{
    private const byte Version = 1;
    private const int PayloadLength = 1 + 1 + 4 + 8 + UserTagLength;
    private const int UserTagLength = 8;
    private const int MacLength = 16;
    private const int Length = PayloadLength + MacLength;
    private const int HmacLength = 32;

    [ThreadStatic]
    private static (CursorCodec Codec, IncrementalHash Hmac)? t_hmac;

    private readonly byte[] _key;

    public CursorCodec(byte[] key)
    {
        if (key.Length < 32)
        {
            throw new ArgumentException("The cursor signing key must be at least 32 bytes.", nameof(key));
        }

        _key = key;
    }

    public string Encode(FeedCursor cursor, string userId)
    {
        Span<byte> bytes = stackalloc byte[Length];
        bytes[0] = Version;
        bytes[1] = (byte)cursor.Kind;
        BinaryPrimitives.WriteInt32BigEndian(bytes[2..], cursor.Partition);
        BinaryPrimitives.WriteInt64BigEndian(bytes[6..], cursor.Offset);
        UserTag(userId, bytes.Slice(14, UserTagLength));
        Sign(bytes[..PayloadLength], bytes[PayloadLength..]);
        return Base64Url.EncodeToString(bytes);
    }

    public CursorVerdict TryDecode(string text, string userId, out FeedCursor cursor)
    {
        cursor = default;
        Span<byte> bytes = stackalloc byte[64];
        // Base64Url.TryDecodeFromChars throws (rather than failing) on characters outside the alphabet.
        if (text.Length > 96 || !text.All(IsBase64UrlChar) || !Base64Url.TryDecodeFromChars(text, bytes, out var written) || written != Length || bytes[0] != Version)
        {
            return CursorVerdict.Malformed;
        }

        Span<byte> expected = stackalloc byte[MacLength];
        Sign(bytes[..PayloadLength], expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, bytes.Slice(PayloadLength, MacLength)))
        {
            return CursorVerdict.Malformed;
        }

        var kind = (CursorKind)bytes[1];
        if (kind is not (CursorKind.Position or CursorKind.InSnapshot))
        {
            return CursorVerdict.Malformed;
        }

        Span<byte> tag = stackalloc byte[UserTagLength];
        UserTag(userId, tag);
        if (!tag.SequenceEqual(bytes.Slice(14, UserTagLength)))
        {
            return CursorVerdict.OtherUser;
        }

        cursor = new FeedCursor(kind, BinaryPrimitives.ReadInt32BigEndian(bytes[2..]), BinaryPrimitives.ReadInt64BigEndian(bytes[6..]));
        return CursorVerdict.Valid;
    }

    private static bool IsBase64UrlChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '_';

    private void Sign(ReadOnlySpan<byte> payload, Span<byte> mac)
    {
        var hmac = Hmac();
        hmac.AppendData(payload);
        Span<byte> full = stackalloc byte[HmacLength];
        hmac.GetHashAndReset(full);
        full[..mac.Length].CopyTo(mac);
    }

    private void UserTag(string userId, Span<byte> tag)
    {
        Span<byte> input = stackalloc byte[Encoding.UTF8.GetMaxByteCount(userId.Length) + 1];
        input[0] = (byte)'u';
        var length = Encoding.UTF8.GetBytes(userId, input[1..]) + 1;
        Sign(input[..length], tag);
    }

    /// <summary>
    /// This thread's HMAC of this codec's key, reset after each use. A one-shot HMAC sets up a new context and key
    /// schedule every call; every delivered update's cursor costs two, and a resume storm signs tens of thousands
    /// at once (13 % of the edge's CPU then).
    /// </summary>
    private IncrementalHash Hmac()
    {
        if (t_hmac is { } cached && ReferenceEquals(cached.Codec, this))
        {
            return cached.Hmac;
        }

        t_hmac?.Hmac.Dispose();
        var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key);
        t_hmac = (this, hmac);
        return hmac;
    }
}
