using System.Buffers;
using System.Text;

namespace Pipeline.Kafka;

/// <summary>
/// The partition Kafka's default partitioner gives a key: murmur2 of the key bytes, made positive, modulo the
/// partition count. librdkafka's <c>murmur2_random</c> (which every producer here is configured with) and the Java
/// client compute the same, so a stage can know where a key lands before it is produced.
/// </summary>
public static class KeyPartitioner
{
    public static int Partition(string key, int partitions)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(partitions);
        // One encoding pass: the buffer is sized for the longest encoding, and GetBytes says how much it used.
        var longest = Encoding.UTF8.GetMaxByteCount(key.Length);
        byte[]? rented = null;
        var buffer = longest <= 512 ? stackalloc byte[512] : (rented = ArrayPool<byte>.Shared.Rent(longest));
        var length = Encoding.UTF8.GetBytes(key, buffer);
        var partition = (Murmur2(buffer[..length]) & 0x7fffffff) % partitions;
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }

        return partition;
    }

    /// <summary>Kafka's murmur2 (seed 0x9747b28c), as <c>org.apache.kafka.common.utils.Utils.murmur2</c>.</summary>
    public static int Murmur2(ReadOnlySpan<byte> data)
    {
        const uint m = 0x5bd1e995;
        const int r = 24;
        var length = data.Length;
        var h = 0x9747b28cu ^ (uint)length;
        var whole = length & ~3;
        for (var i = 0; i < whole; i += 4)
        {
            var k = (uint)(data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24);
            k *= m;
            k ^= k >> r;
            k *= m;
            h *= m;
            h ^= k;
        }

        switch (length & 3)
        {
            case 3:
                h ^= (uint)data[whole + 2] << 16;
                goto case 2;
            case 2:
                h ^= (uint)data[whole + 1] << 8;
                goto case 1;
            case 1:
                h ^= data[whole];
                h *= m;
                break;
        }

        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return (int)h;
    }
}
