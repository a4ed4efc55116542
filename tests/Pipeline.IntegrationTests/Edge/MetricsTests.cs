using Pipeline.IntegrationTests.Pipeline;

namespace Pipeline.IntegrationTests.Edge;

[Collection(PipelineTestGroup.Name)]
public sealed class MetricsTests
{
    private readonly PipelineFixture _pipeline;

    public MetricsTests(PipelineFixture pipeline)
    {
        _pipeline = pipeline;
    }

    [Fact]
    public async Task PrometheusScrape_OnTheHttp1Port_ExposesEdgeAndProcessorMetrics()
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_pipeline.WebPort}"), Timeout = TimeSpan.FromSeconds(30) };

        var text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));

        foreach (var metric in new[]
        {
            "feed_edge_subscribers", "feed_edge_deliveries_total", "feed_edge_updates_consumed_total", "feed_edge_replica_lag",
            "feed_processor_posts_in_total", "feed_processor_feed_updates_out_total", "feed_processor_dead_letters_total",
            "feed_processor_tasks_open", "feed_processor_repartition_purges_refused_total",
        })
        {
            Assert.Contains(metric, text, StringComparison.Ordinal);
        }
    }
}
