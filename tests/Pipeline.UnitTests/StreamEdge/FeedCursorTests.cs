using CsCheck;
using Pipeline.StreamEdge.Delivery;

namespace Pipeline.UnitTests.StreamEdge;

public sealed class FeedCursorTests
{
    [Fact]
    public void EncodeThenDecode_RoundTripsAnyPosition() =>
        Gen.Select(Gen.Int[0, int.MaxValue], Gen.Long[0, long.MaxValue]).Sample((partition, offset) =>
        {
            var cursor = new FeedCursor(partition, offset);
            Assert.True(FeedCursor.TryDecode(cursor.Encode(), out var decoded));
            Assert.Equal(cursor, decoded);
        });

    [Theory]
    [InlineData("")]
    [InlineData("not-a-cursor")]
    [InlineData("AAAAAAAAAAAAAAAAAA")]
    [InlineData("////////////////////////////////////////////////////////////////////////")]
    public void Decode_GarbageIsRejected(string text) => Assert.False(FeedCursor.TryDecode(text, out _));
}
