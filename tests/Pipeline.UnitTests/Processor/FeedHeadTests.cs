using Pipeline.Processor.Topology;

namespace Pipeline.UnitTests.Processor;

public sealed class FeedHeadTests
{
    private static readonly FeedHeadSerDes SerDes = new();

    [Fact]
    public void Appends_CountAndAdvance_RemovalsInTheMiddleKeepTheFloor()
    {
        var head = default(FeedHead).Appended().Appended().Appended();
        Assert.Equal(new FeedHead(3, 0, 3), head);

        Assert.Equal(new FeedHead(2, 0, 3), head.Removed(1));
        Assert.Equal(new FeedHead(2, 1, 3), head.Removed(0));
    }

    [Fact]
    public void DroppingTheOldest_MovesTheFloorPastIt_EvenOverAHole()
    {
        var head = new FeedHead(2, 0, 5);

        Assert.Equal(new FeedHead(1, 4, 5), head.DroppedOldest(3));
    }

    [Fact]
    public void AnEmptiedFeed_StartsOverAtZero()
    {
        Assert.Equal(default, new FeedHead(1, 7, 8).Removed(7));
        Assert.Equal(default, new FeedHead(1, 7, 8).DroppedOldest(7));
    }

    [Fact]
    public void SerDes_RoundTrips_AndAMissingValueIsAnEmptyFeed()
    {
        var head = new FeedHead(800, 123_456_789_012, long.MaxValue);

        Assert.Equal(head, SerDes.Deserialize(SerDes.Serialize(head, default), default));
        Assert.Equal(default, SerDes.Deserialize(null!, default));
    }

    [Fact]
    public void SerDes_RejectsAValueOfAnotherShape_WithAReason()
    {
        var error = Assert.Throws<InvalidOperationException>(() => SerDes.Deserialize(new byte[8], default));

        Assert.Contains("24 bytes; got 8", error.Message, StringComparison.Ordinal);
    }
}
