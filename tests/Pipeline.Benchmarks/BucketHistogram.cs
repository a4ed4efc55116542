namespace Pipeline.Benchmarks;

/// <summary>Quantiles from Prometheus cumulative buckets, estimated as Prometheus's histogram_quantile does.</summary>
public static class BucketHistogram
{
    /// <summary>The buckets' counts during a window: <paramref name="after"/> minus <paramref name="before"/> (same bounds).</summary>
    public static List<(double UpperBound, double Count)> Delta(List<(double UpperBound, double Count)> before, List<(double UpperBound, double Count)> after) =>
        [.. after.Select(bucket => (bucket.UpperBound, bucket.Count - before.Where(b => b.UpperBound.Equals(bucket.UpperBound)).Select(b => b.Count).FirstOrDefault()))];

    /// <summary>
    /// Linear interpolation inside the bucket holding the quantile; the largest finite bound when it falls in +Inf,
    /// NaN without observations. Only as precise as the bucket bounds.
    /// </summary>
    public static double Quantile(List<(double UpperBound, double Count)> buckets, double quantile)
    {
        var total = buckets.Count == 0 ? 0 : buckets[^1].Count;
        if (total <= 0)
        {
            return double.NaN;
        }

        var rank = quantile * total;
        var (lower, below) = (0.0, 0.0);
        foreach (var (upper, count) in buckets)
        {
            if (count >= rank)
            {
                return double.IsPositiveInfinity(upper) ? lower : lower + ((upper - lower) * (rank - below) / Math.Max(count - below, 1e-9));
            }

            (lower, below) = (upper, count);
        }

        return lower;
    }
}
