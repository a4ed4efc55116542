using System.Text;
using Pipeline.Kafka;

namespace Pipeline.UnitTests.Kafka;

public sealed class KeyPartitionerTests
{
    /// <summary>The vectors of Kafka's own test for Utils.murmur2 (clients/src/test/.../UtilsTest.java).</summary>
    [Theory]
    [InlineData("21", -973932308)]
    [InlineData("foobar", -790332482)]
    [InlineData("a-little-bit-long-string", -985981536)]
    [InlineData("a-little-bit-longer-string", -1486304829)]
    [InlineData("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971)]
    [InlineData("abc", 479470107)]
    public void Murmur2_MatchesKafka(string key, int expected) =>
        Assert.Equal(expected, KeyPartitioner.Murmur2(Encoding.UTF8.GetBytes(key)));

    [Fact]
    public void Partition_IsThePositiveHashModuloTheCount_ForShortAndLongKeys()
    {
        foreach (var key in new[] { "", "u", "user-000042", "ünïcødé-user", new string('x', 1000) })
        {
            var hash = KeyPartitioner.Murmur2(Encoding.UTF8.GetBytes(key));
            Assert.Equal((hash & 0x7fffffff) % 12, KeyPartitioner.Partition(key, 12));
        }
    }
}
