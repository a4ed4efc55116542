using Pipeline.Kafka.Contracts;

namespace Pipeline.UnitTests.StreamEdge;

public sealed class FeedContractTests
{
    [Theory]
    [InlineData("alice")]
    [InlineData("user-0001")]
    [InlineData("a.b_c:d@e-f")]
    public void ValidId_IsAccepted(string id) => Assert.Null(FeedContract.ValidateId("user_id", id));

    [Theory]
    [InlineData("", "user_id is required")]
    [InlineData("a|b", "user_id contains '|'")]
    [InlineData("a b", "user_id contains ' '")]
    [InlineData("é", "user_id contains 'é'")]
    public void InvalidId_IsRejectedWithTheReason(string id, string expected) =>
        Assert.Equal(expected, FeedContract.ValidateId("user_id", id)?[..expected.Length]);

    [Fact]
    public void OverlongId_IsRejected() =>
        Assert.Equal("user_id is 65 characters long; the limit is 64", FeedContract.ValidateId("user_id", new string('a', 65)));

    [Fact]
    public void BodyLimit_CountsUtf8Bytes()
    {
        Assert.Null(FeedContract.ValidatePostBody(new string('é', 2048), 4096));
        Assert.Equal("body is 4098 bytes (UTF-8); the limit is 4096", FeedContract.ValidatePostBody(new string('é', 2049), 4096));
        Assert.Equal("body is required", FeedContract.ValidatePostBody("  ", 4096));
    }

    [Fact]
    public void SelfFollow_IsRejected() => Assert.Equal("a user cannot follow themselves", FeedContract.ValidateFollowPair("a", "a"));
}
