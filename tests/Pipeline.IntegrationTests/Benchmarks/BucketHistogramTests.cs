using Pipeline.Benchmarks;

namespace Pipeline.IntegrationTests.Benchmarks;

public sealed class BucketHistogramTests
{
    [Fact]
    public void Quantile_InterpolatesInsideTheBucket_OfTheWindowsObservationsOnly()
    {
        List<(double, double)> before = [(0.1, 100), (0.5, 100), (double.PositiveInfinity, 100)];
        List<(double, double)> after = [(0.1, 110), (0.5, 200), (double.PositiveInfinity, 200)];

        var window = BucketHistogram.Delta(before, after);

        // 10 observations ≤ 0.1 s and 90 in (0.1, 0.5]: the median is 40 of those 90 into the second bucket.
        Assert.Equal(new List<(double, double)> { (0.1, 10), (0.5, 100), (double.PositiveInfinity, 100) }, window);
        Assert.Equal(0.1 + (0.4 * 40 / 90), BucketHistogram.Quantile(window, 0.5), 9);
        Assert.Equal(0.05, BucketHistogram.Quantile(window, 0.05), 9);
    }

    [Fact]
    public void Quantile_InTheOpenBucket_IsTheLargestBound_AndNaNWithoutObservations()
    {
        Assert.Equal(0.5, BucketHistogram.Quantile([(0.1, 0), (0.5, 1), (double.PositiveInfinity, 10)], 0.99));
        Assert.True(double.IsNaN(BucketHistogram.Quantile([(0.1, 0), (double.PositiveInfinity, 0)], 0.5)));
        Assert.True(double.IsNaN(BucketHistogram.Quantile([], 0.5)));
    }
}
