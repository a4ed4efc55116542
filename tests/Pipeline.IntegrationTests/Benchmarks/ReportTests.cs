using Pipeline.Benchmarks;

namespace Pipeline.IntegrationTests.Benchmarks;

public sealed class ReportTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "report-tests", Guid.NewGuid().ToString("N"));

    /// <summary>
    /// The Socket.IO peer has no edge histogram and a --direct run no processor: those figures are NaN, and the
    /// report must still be written (it once threw, losing the whole peer run) and say nothing about them.
    /// </summary>
    [Fact]
    public void Write_LatencyWithUnmeasuredFigures_AppendsTheLine_AndLeavesThemOutOfTheSummary()
    {
        var result = new LatencyResult(10, 2, 5, 1, 10, 5, 10, 10, 0, 0, 1, 2, 3, 4, 5, 10, 0, 0, 0.1, 0, 0.2, 0.1, [1, 2, 3]);

        new Report(_directory).Write("peer", result);

        var line = Assert.Single(File.ReadAllLines(Path.Combine(_directory, "results.jsonl")));
        Assert.Contains("\"EdgeApplyP50Ms\":\"NaN\"", line, StringComparison.Ordinal);
        Assert.DoesNotContain("NaN", Report.Describe(result), StringComparison.Ordinal);
        Assert.Contains("delivered 10/10", Report.Describe(result), StringComparison.Ordinal);
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
