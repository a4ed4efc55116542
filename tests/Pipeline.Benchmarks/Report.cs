using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using ScottPlot;

namespace Pipeline.Benchmarks;

/// <summary>Prints results as Markdown tables, appends them as JSON lines, and draws the plots for BENCHMARKS.md.</summary>
public sealed class Report(string outputDirectory)
{
    // Figures a scenario could not measure (the peer has no edge histogram; --direct runs no processor) are NaN.
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public void Write(string scenario, object result)
    {
        Directory.CreateDirectory(outputDirectory);
        var line = JsonSerializer.Serialize(new { scenario, at = DateTime.UtcNow, published = ServiceProcess.PublishedDirectory, result }, Json);
        File.AppendAllText(Path.Combine(outputDirectory, "results.jsonl"), line + Environment.NewLine);
        Console.WriteLine(Describe(result));
    }

    public static string Describe(object result) => result switch
    {
        LatencyResult r => Invariant(
            $"latency  | {r.Subscribers} subs × fan-out {r.FanOut} @ {r.PostsPerSecond}/s for {r.Seconds}s ({r.PerConnection}/conn) | p50 {r.P50Ms:F1} ms · p90 {r.P90Ms:F1} · p99 {r.P99Ms:F1} · p99.9 {r.P999Ms:F1} · max {r.MaxMs:F1} | ")
            + (double.IsNaN(r.EdgeApplyP50Ms) ? "" : Invariant($"of which post → edge apply ≈ p50 {r.EdgeApplyP50Ms:F0} ms · p99 {r.EdgeApplyP99Ms:F0} ms (edge buckets) | "))
            + (double.IsNaN(r.EdgeWriteP50Ms) ? "" : Invariant($"edge dispatch → stream write ≈ p50 {r.EdgeWriteP50Ms:F1} ms · p99 {r.EdgeWriteP99Ms:F1} ms (edge buckets) | "))
            + (r.EdgeGc is not { } gc ? "" : Invariant($"edge GC: {gc.Collections:F0} collections (gen0 {gc.Gen0:F0} · gen1 {gc.Gen1:F0} · gen2 {gc.Gen2:F0}), paused {gc.PauseMs:F0} ms in all, {(gc.Collections > 0 ? gc.PauseMs / gc.Collections : 0):F1} ms each; {gc.AllocatedMiB:F0} MiB allocated | "))
            + (r.EdgeReplica is not { } replica ? "" : $"edge replica: {replica.Describe()} | ")
            + (double.IsNaN(r.CommitsPerSecond) ? "" : Invariant($"processor commits {r.CommitsPerSecond:F1}/s, each ≈ p50 {r.CommitP50Ms:F1} ms · p99 {r.CommitP99Ms:F1} ms | "))
            + (double.IsNaN(r.SpanP50Ms) ? "" : Invariant($"transactions first record → commit ≈ p50 {r.SpanP50Ms:F0} ms · p99 {r.SpanP99Ms:F0} ms (hidden from read_committed consumers that long on a real broker; the embedded one shows records at once) | "))
            + Invariant($"{r.DeliveriesPerSecond:F0} deliveries/s | delivered {r.Deliveries}/{r.Expected}, gaps {r.Gaps}, dups {r.Duplicates} | processor in {r.ProcessorInPerSecond:F0}/s out {r.ProcessorOutPerSecond:F0}/s | cores: broker {r.BrokerCores:F2} processor {r.ProcessorCores:F2} edge {r.EdgeCores:F2} harness {r.HarnessCores:F2}"),
        ThroughputResult r => Invariant($"throughput | {r.Posts} posts × {r.FanOut} | processor {r.ProcessorUpdatesPerSecond:F0} updates/s · raw loop {r.RawLoopUpdatesPerSecond:F0} updates/s · ratio {r.Ratio:P0} · the raw loop with the processor's stores, changelogs and transactions {r.StatefulUpdatesPerSecond:F0} updates/s · processor ÷ it {r.StatefulRatio:P0}"),
        SubscriberScaleResult r => Invariant($"subscribers | {r.Subscribers} ({r.PerConnection}/conn, {(r.OpensPerSecond > 0 ? $"arriving at {r.OpensPerSecond:F0}/s" : "all at once")}) | edge private {r.EdgeBaselineMiB:F0} → {r.EdgeMiB:F0} MiB · {r.BytesPerSubscriber / 1024:F2} KiB/subscriber (at the edge's last GC: heap {r.EdgeGcHeapMiB:F0} MiB, of it {r.EdgeGcFragmentationMiB:F0} MiB free space, committed {r.EdgeGcCommittedMiB:F0} MiB; its Kestrel memory pool held {r.EdgePooledMiB:F0} MiB of free blocks){(r.HeldSeconds > 0 ? $" · held {r.HeldSeconds:F0} s: {r.EdgeHeldMiB:F0} MiB · {r.BytesPerSubscriberHeld / 1024:F2} KiB/subscriber (GC committed {r.EdgeGcCommittedHeldMiB:F0} MiB, pool {r.EdgePooledHeldMiB:F0} MiB free)" : "")} · harness {r.HarnessMiB:F0} MiB{(r.EdgeCompaction is { } compaction ? $" · edge: {compaction}" : "")}"),
        ResumeStormResult r => Invariant($"resume storm | {r.Subscribers} subscribers (first opened on the fresh edge in {r.SecondsToOpen:F2} s) | all resumed {r.SecondsToAllResumed:F2} s after the edge process started (caught up at {r.SecondsToCaughtUp:F2} s by its log, /healthz ready at {r.SecondsToReady:F2} s; first resumed at {r.SecondsToFirstResumed:F2} s, half at {r.SecondsToHalfResumed:F2} s, 90 % at {r.SecondsTo90PercentResumed:F2} s) | delivered {r.Deliveries}/{r.Expected}, gaps {r.Gaps}, dups {r.Duplicates} | cores until all resumed: broker {r.BrokerCores:F2} processor {r.ProcessorCores:F2} edge {r.EdgeCores:F2} harness {r.HarnessCores:F2}{(r.EdgeCompaction is { } compaction ? $" · edge: {compaction}" : "")}"),
        FanOutResult r => Invariant($"large author | {r.Followers} followers | all updates out in {r.SecondsToAllUpdates:F2} s · longest stream-thread fan-out {r.LongestStreamThreadSeconds:F2} s · processor private {r.ProcessorMiBBefore:F0} → {r.ProcessorMiBAfter:F0} MiB (peak)"),
        ReplicaResult r => Invariant($"replica | {r.Users} feeds at caps of {r.FeedSize} entries and {r.ResumeWindow} logged updates (the first holds {r.FeedEntries}) | prefill {(long)r.Users * r.Prefill} updates in {r.PrefillSeconds:F1} s on {r.PrefillCpuSeconds:F1} s of CPU{(r.PrefillWork is { } p ? $" ({p.Describe()})" : "")} | then {r.Applies} applies on {r.Threads} applying thread{(r.Threads == 1 ? "" : "s")}: {r.MicrosPerApply:F2} µs each on its thread, {r.AppliesPerSecond:F0}/s in all, {r.CpuMicrosPerApply:F2} µs of this process's CPU each{(r.Work is { } w ? $" ({w.Describe()})" : "")} | table files {r.TableFilesMiB:F0} MiB"),
        _ => result.ToString() ?? "",
    };

    /// <summary>Latency distribution (percentile spectrum) of one run.</summary>
    public void PlotLatency(LatencyResult result, string fileName)
    {
        double[] percentiles = [10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100];
        var plot = new Plot();
        var xs = percentiles.Select((_, i) => (double)i).ToArray();
        var ys = result.HistogramPercentilesUs.Select(us => us / 1000.0).ToArray();
        plot.Add.Scatter(xs, ys);
        plot.Axes.Bottom.SetTicks(xs, [.. percentiles.Select(p => p.ToString(CultureInfo.InvariantCulture))]);
        plot.XLabel("percentile");
        plot.YLabel("post → subscriber latency (ms)");
        plot.Title(Invariant($"Latency: {result.Subscribers} subscribers, fan-out {result.FanOut}, {result.PostsPerSecond} posts/s"));
        Save(plot, fileName);
    }

    /// <summary>Deliveries/s and p99 against the number of subscribers, over a sweep.</summary>
    public void PlotSweep(IReadOnlyList<LatencyResult> sweep, string fileName)
    {
        var plot = new Plot();
        var xs = sweep.Select(r => (double)r.Subscribers).ToArray();
        var deliveries = plot.Add.Scatter(xs, [.. sweep.Select(r => r.DeliveriesPerSecond)]);
        deliveries.LegendText = "deliveries/s (left)";
        var p99 = plot.Add.Scatter(xs, [.. sweep.Select(r => r.P99Ms)]);
        p99.LegendText = "p99 ms (right)";
        p99.Axes.YAxis = plot.Axes.Right;
        plot.XLabel("subscribers");
        plot.Axes.Left.Label.Text = "deliveries/s";
        plot.Axes.Right.Label.Text = "p99 latency (ms)";
        plot.ShowLegend();
        plot.Title("Deliveries/s and p99 vs subscribers");
        Save(plot, fileName);
    }

    private void Save(Plot plot, string fileName)
    {
        Directory.CreateDirectory(outputDirectory);
        plot.SavePng(Path.Combine(outputDirectory, fileName), 900, 500);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
