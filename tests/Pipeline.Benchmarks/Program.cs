using System.CommandLine;
using Pipeline.Benchmarks;

// Every scenario bounds its traffic in count and time and talks only to loopback.
var output = new Option<string>("--output") { Description = "Directory for results.jsonl and the plots.", DefaultValueFactory = _ => "bench-results" };
var subscribers = new Option<int>("--subscribers") { DefaultValueFactory = _ => 10_000 };
var fanOut = new Option<int>("--fanout") { DefaultValueFactory = _ => 20 };
var rate = new Option<double>("--rate") { Description = "Posts per second.", DefaultValueFactory = _ => 1000 };
var seconds = new Option<int>("--seconds") { DefaultValueFactory = _ => 30 };
var perConnection = new Option<int>("--per-connection") { Description = "Subscriptions per HTTP/2 connection.", DefaultValueFactory = _ => 1000 };
var partitions = new Option<int>("--partitions") { DefaultValueFactory = _ => 6 };
var posts = new Option<long>("--posts") { Description = "Backlog size for the throughput scenario.", DefaultValueFactory = _ => 5000 };
var followers = new Option<int>("--followers") { DefaultValueFactory = _ => 100_000 };
var counts = new Option<int[]>("--counts") { Description = "Subscriber counts for sweeps.", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [1000, 5000, 10_000] };

var latency = new Command("latency", "Post → subscriber latency and deliveries/s at a post rate, fan-out and subscriber count.") { subscribers, fanOut, rate, seconds, perConnection, partitions, output };
latency.SetAction(async (parse, ct) =>
{
    var report = new Report(parse.GetValue(output)!);
    var result = await Scenarios.LatencyAsync(parse.GetValue(subscribers), parse.GetValue(fanOut), parse.GetValue(rate), TimeSpan.FromSeconds(parse.GetValue(seconds)), parse.GetValue(perConnection), parse.GetValue(partitions), ct);
    report.Write("latency", result);
    report.PlotLatency(result, "latency-distribution.png");
});

var sweep = new Command("sweep", "The latency scenario at several subscriber counts (same fan-out, posts/s scaled to keep fan-out per subscriber).") { counts, fanOut, rate, seconds, perConnection, partitions, output };
sweep.SetAction(async (parse, ct) =>
{
    var report = new Report(parse.GetValue(output)!);
    var results = new List<LatencyResult>();
    foreach (var count in parse.GetValue(counts)!)
    {
        var result = await Scenarios.LatencyAsync(count, parse.GetValue(fanOut), parse.GetValue(rate) * count / 10_000.0, TimeSpan.FromSeconds(parse.GetValue(seconds)), parse.GetValue(perConnection), parse.GetValue(partitions), ct);
        report.Write("sweep", result);
        results.Add(result);
    }

    report.PlotSweep(results, "sweep.png");
});

var throughput = new Command("throughput", "Processor vs a raw Confluent.Kafka consume → fan-out → produce loop on the same broker and backlog.") { subscribers, fanOut, posts, partitions, output };
throughput.SetAction(async (parse, ct) =>
    new Report(parse.GetValue(output)!).Write("throughput", await Scenarios.ThroughputAsync(parse.GetValue(subscribers), parse.GetValue(fanOut), parse.GetValue(posts), parse.GetValue(partitions), ct)));

var opensPerSecond = new Option<double>("--opens-per-second") { Description = "How fast subscribers arrive (0: all at once, a burst).", DefaultValueFactory = _ => 0 };
var heldSeconds = new Option<int>("--held-seconds") { Description = "Also measure after holding the open subscribers this long (0: only right after they opened).", DefaultValueFactory = _ => 0 };
var scale = new Command("subscribers", "Idle subscribers one edge holds, and private memory per subscriber.") { counts, perConnection, opensPerSecond, heldSeconds, output };
scale.SetAction(async (parse, ct) =>
{
    var report = new Report(parse.GetValue(output)!);
    foreach (var count in parse.GetValue(counts)!)
    {
        report.Write("subscribers", await Scenarios.SubscriberScaleAsync(count, parse.GetValue(perConnection), ct, parse.GetValue(opensPerSecond), TimeSpan.FromSeconds(parse.GetValue(heldSeconds))));
    }
});

var storm = new Command("resume-storm", "Subscribers attached when the edge restarts: time until all resumed, gaps, duplicates.") { subscribers, fanOut, perConnection, output };
storm.SetAction(async (parse, ct) =>
    new Report(parse.GetValue(output)!).Write("resume-storm", await Scenarios.ResumeStormAsync(parse.GetValue(subscribers), parse.GetValue(fanOut), parse.GetValue(perConnection), ct)));

var fanout = new Command("large-author", "One post by an author with many followers: fan-out time and processor memory.") { followers, output };
fanout.SetAction(async (parse, ct) =>
    new Report(parse.GetValue(output)!).Write("large-author", await Scenarios.LargeAuthorAsync(parse.GetValue(followers), ct)));

var peerDirectory = new Option<string?>("--peer-dir") { Description = "The tests/peer-socketio directory (found above the harness binary by default)." };
var direct = new Option<bool>("--direct") { Description = "Write the feed updates to feed.updates from the harness (no processor), to load the delivery layers beyond the processor's rate." };
var ourClient = new Option<OurClient>("--our-client") { Description = "Who subscribes to our edge: dotnet (the harness's own Grpc.Net.Client fleet, in-process) or node (@grpc/grpc-js in a Node process, like the peer's socket.io-client fleet).", DefaultValueFactory = _ => OurClient.DotNet };
var prefill = new Option<int>("--prefill") { Description = "With --direct: updates written to every subscriber's feed before the edge starts, which nobody receives live (at least Edge:FeedSize and Edge:ResumeWindow start the run with every feed at the edge's caps).", DefaultValueFactory = _ => 0 };
var peer = new Command("peer", "The latency scenario against our edge, then against a Socket.IO peer (socket.io + kafkajs, socket.io-client subscribers) on the same broker and processor; ratios ours ÷ peer.") { subscribers, fanOut, rate, seconds, perConnection, partitions, direct, prefill, peerDirectory, ourClient, output };
peer.SetAction(async (parse, ct) =>
    new Report(parse.GetValue(output)!).Write("peer", await PeerScenario.RunAsync(parse.GetValue(subscribers), parse.GetValue(fanOut), parse.GetValue(rate), TimeSpan.FromSeconds(parse.GetValue(seconds)), parse.GetValue(perConnection), parse.GetValue(partitions), parse.GetValue(direct), parse.GetValue(peerDirectory), parse.GetValue(ourClient), ct, parse.GetValue(prefill))));

var applies = new Option<long>("--applies") { Description = "Updates applied after the prefill, over all the users.", DefaultValueFactory = _ => 2_000_000 };
var replicaPrefill = new Option<int>("--prefill") { Description = "Updates applied to every user's feed first (at least Edge:ResumeWindow puts every feed at both caps).", DefaultValueFactory = _ => 1000 };
var replicaThreads = new Option<int>("--threads") { Description = "Applying threads, each with its own writer and a share of the partitions (as Edge:ApplyThreads).", DefaultValueFactory = _ => 1 };
var replica = new Command("replica", "The edge's feed replica alone, in this process: every feed filled to its caps, then the time and CPU per apply and RocksDB's flushes and compactions (caps from --edge-setting Edge__FeedSize / Edge__ResumeWindow, else the edge's defaults).") { subscribers, replicaPrefill, applies, replicaThreads, output };
replica.SetAction(parse =>
    new Report(parse.GetValue(output)!).Write("replica", ReplicaScenario.Run(parse.GetValue(subscribers), parse.GetValue(replicaPrefill), parse.GetValue(applies), threads: parse.GetValue(replicaThreads))));

var processorSettings = new Option<string[]>("--processor-setting")
{
    Description = "Processor configuration for this run, as KEY=VALUE in environment-variable form (e.g. Processor__Guarantee=AtLeastOnce).",
    Recursive = true,
    AllowMultipleArgumentsPerToken = false,
};
var edgeSettings = new Option<string[]>("--edge-setting")
{
    Description = "Edge configuration or runtime knob for this run, as KEY=VALUE in environment-variable form (e.g. Edge__SubscriberBufferSize=256, DOTNET_GCgen0size=0x400000).",
    Recursive = true,
    AllowMultipleArgumentsPerToken = false,
};
var published = new Option<DirectoryInfo?>("--published")
{
    Description = "Run the services from published builds: DIR/StreamEdge/StreamEdge.dll, DIR/Processor/Processor.dll (dotnet publish -p:PublishReadyToRun=true, as in infra/README.md). A service not published there runs from the harness's build output.",
    Recursive = true,
};
published.Validators.Add(result =>
{
    if (result.GetValue(published) is { } directory && !directory.Exists)
    {
        result.AddError($"--published: {directory.FullName} does not exist; publish the edge and the processor into it first (BENCHMARKS.md, \"Reproduce\").");
    }
});
var root = new RootCommand("Feed pipeline load harness: broker, processor and edge as separate processes on loopback.")
{
    latency, sweep, throughput, scale, storm, fanout, peer, replica, processorSettings, edgeSettings, published,
};
var parsed = root.Parse(args);
ServiceProcess.PublishedDirectory = parsed.GetValue(published)?.FullName;
foreach (var (settings, into) in new[] { (processorSettings, Scenarios.ProcessorSettings), (edgeSettings, Scenarios.EdgeSettings) })
{
    foreach (var setting in parsed.GetValue(settings) ?? [])
    {
        var (key, value) = (setting[..setting.IndexOf('=', StringComparison.Ordinal)], setting[(setting.IndexOf('=', StringComparison.Ordinal) + 1)..]);
        into[key] = value;
    }
}

return await parsed.InvokeAsync();
