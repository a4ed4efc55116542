using Feed.V1;
using Pipeline.Benchmarks;
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

            // The replica's RocksDB figures, read from the open database at scrape time.
            "feed_edge_replica_block_cache_bytes", "feed_edge_replica_table_files_bytes", "feed_edge_replica_pending_compaction_bytes",
            "feed_processor_posts_in_total", "feed_processor_feed_updates_out_total", "feed_processor_dead_letters_total",
            "feed_processor_tasks_open", "feed_processor_repartition_purges_refused_total",

            // Kestrel's free buffer blocks, from the edge's own pool (BlockPools), and the streams opened so far.
            "feed_edge_memory_pool_free_bytes", "feed_edge_subscriptions_opened_total",
        })
        {
            Assert.Contains(metric, text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task UpdateAge_CountsEachAppliedUpdate_FromTheCausingPostsTimestamp_InTheEdgesBuckets()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_pipeline.WebPort}"), Timeout = TimeSpan.FromSeconds(30) };
        var run = Guid.NewGuid().ToString("N")[..8];
        var (author, follower) = ($"age-author-{run}", $"age-follower-{run}");
        await _pipeline.FollowAsync(follower, author, timeout.Token);
        var (countBefore, sumBefore, before) = await UpdateAgeAsync(http, timeout.Token);
        var writesBefore = PipelineProcesses.Value(before, "feed_edge_write_delay_seconds_count");

        using var call = await _pipeline.SubscribeAsync(follower, timeout.Token);
        await _pipeline.Ingest.PublishPostAsync(new PublishPostRequest { AuthorId = author, Body = "age" }, cancellationToken: timeout.Token);
        await call.ResponseStream.NextUpdateAsync(timeout.Token);

        // The subscriber received the update only after the edge applied it, so it is counted; the exporter may
        // still answer from its cached scrape (300 ms) for a moment.
        var (count, sum, text) = await UpdateAgeAsync(http, timeout.Token);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while ((count <= countBefore || PipelineProcesses.Value(text, "feed_edge_write_delay_seconds_count") <= writesBefore) && !wait.IsCancellationRequested)
        {
            await Task.Delay(100, timeout.Token);
            (count, sum, text) = await UpdateAgeAsync(http, timeout.Token);
        }

        Assert.True(count > countBefore, $"feed_edge_update_age_seconds_count stayed at {countBefore}");

        // Ages come from the post's Kafka timestamp carried through both hops: a lost timestamp reads as decades.
        Assert.InRange((sum - sumBefore) / (count - countBefore), 0, 60);

        // The update's write to the stream was timed from its dispatch, after the apply.
        Assert.True(PipelineProcesses.Value(text, "feed_edge_write_delay_seconds_count") > writesBefore, $"feed_edge_write_delay_seconds_count stayed at {writesBefore}");

        // The edge's own buckets (20 ms is not an OpenTelemetry default boundary).
        Assert.Contains("feed_edge_update_age_seconds_bucket{otel_scope_name=\"Pipeline.StreamEdge\",le=\"0.02\"}", text, StringComparison.Ordinal);

        // Under exactly-once the update became visible at a transaction commit, which the processor timed.
        Assert.True(PipelineProcesses.Value(text, "feed_processor_transaction_commit_duration_seconds_count") > 0, "no transaction commit was timed");

        // ... and the transaction that carried it spanned from its first record to that commit.
        Assert.True(PipelineProcesses.Value(text, "feed_processor_transaction_span_seconds_count") > 0, "no transaction span was timed");
    }

    private static async Task<(double Count, double Sum, string Text)> UpdateAgeAsync(HttpClient http, CancellationToken cancellationToken)
    {
        var text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative), cancellationToken);
        return (PipelineProcesses.Value(text, "feed_edge_update_age_seconds_count"), PipelineProcesses.Value(text, "feed_edge_update_age_seconds_sum"), text);
    }
}
