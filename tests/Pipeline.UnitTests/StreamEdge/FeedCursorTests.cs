using CsCheck;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.UnitTests.StreamEdge;

public sealed class FeedCursorTests
{
    private static readonly CursorCodec Codec = new(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    [Fact]
    public void EncodeThenDecode_RoundTripsAnyPositionForItsUser() =>
        Gen.Select(Gen.Int[-1, int.MaxValue], Gen.Long[-1, long.MaxValue], Gen.String[1, 64]).Sample((partition, offset, user) =>
        {
            var cursor = FeedCursor.At(partition, offset);
            Assert.Equal(CursorVerdict.Valid, Codec.TryDecode(Codec.Encode(cursor, user), user, out var decoded));
            Assert.Equal(cursor, decoded);
        });

    /// <summary>
    /// Cursors outlive edge versions (a client resumes on the upgraded edge), so their bytes are fixed: these were
    /// computed independently (Python's hmac module) from the documented layout.
    /// </summary>
    [Theory]
    [InlineData(CursorKind.Position, 2, 41L, "alice", "AQEAAAACAAAAAAAAAClCSza5bu71ViPis2lHhEClP7-uVF5mTFw")]
    [InlineData(CursorKind.InSnapshot, -1, -1L, "bob", "AQL_______________8OiqJnuQrNwck0teEtsSPFJP4UMqvVyBo")]
    public void Encoding_IsStableAcrossVersions(CursorKind kind, int partition, long offset, string user, string expected)
    {
        Assert.Equal(expected, Codec.Encode(new FeedCursor(kind, partition, offset), user));
        Assert.Equal(CursorVerdict.Valid, Codec.TryDecode(expected, user, out var decoded));
        Assert.Equal(new FeedCursor(kind, partition, offset), decoded);
    }

    [Fact]
    public void AnotherUsersCursor_IsRecognisedAsSuch()
    {
        var bobs = Codec.Encode(FeedCursor.At(2, 41), "bob");
        Assert.Equal(CursorVerdict.OtherUser, Codec.TryDecode(bobs, "alice", out _));
    }

    [Fact]
    public void CursorSignedWithAnotherKey_IsMalformed()
    {
        var other = new CursorCodec(Enumerable.Repeat((byte)7, 32).ToArray());
        Assert.Equal(CursorVerdict.Malformed, Codec.TryDecode(other.Encode(FeedCursor.At(0, 1), "bob"), "bob", out _));
    }

    [Fact]
    public void TamperedCursor_IsMalformed()
    {
        var text = Codec.Encode(FeedCursor.At(0, 1), "bob").ToCharArray();
        text[5] = text[5] == 'A' ? 'B' : 'A';
        Assert.Equal(CursorVerdict.Malformed, Codec.TryDecode(new string(text), "bob", out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("not-a-cursor")]
    [InlineData("AAAAAAAAAAAAAAAAAA")]
    [InlineData("////////////////////////////////////////////////////////////////////////")]
    public void Garbage_IsMalformed(string text) => Assert.Equal(CursorVerdict.Malformed, Codec.TryDecode(text, "bob", out _));

    [Fact]
    public void ShortKey_IsRefused() => Assert.Throws<ArgumentException>(() => new CursorCodec(new byte[16]));
}
