using System.CommandLine;
using Pipeline.DevStack;
using Pipeline.Kafka.Hosting;

// Started by a test host or the load harness: stop when it is gone (PIPELINE_EXIT_WITH_PARENT=1; off otherwise).
ParentProcessWatch.StartIfRequested();

var demo = new Option<bool>("--demo") { Description = "Generate demo traffic: users follow each other and post; a few subscribe." };
var users = new Option<int>("--demo-users") { Description = "Demo users.", DefaultValueFactory = _ => 200 };
var rate = new Option<double>("--demo-rate") { Description = "Demo posts per second.", DefaultValueFactory = _ => 20 };
var kafkaPort = new Option<int>("--kafka-port") { Description = "Port of the embedded Kafka broker.", DefaultValueFactory = _ => 9092 };
var grpcPort = new Option<int>("--grpc-port") { Description = "Native gRPC (HTTP/2 cleartext) port.", DefaultValueFactory = _ => 5000 };
var webPort = new Option<int>("--web-port") { Description = "HTTP/1.1 port: grpc-web, health.", DefaultValueFactory = _ => 5001 };
var partitions = new Option<int>("--partitions") { Description = "Partitions per topic.", DefaultValueFactory = _ => 6 };
var brokerOnly = new Option<bool>("--broker-only")
{
    Description = "Run only the embedded broker (topics provisioned), for a processor and an edge started as separate processes.",
};
var faultControl = new Option<bool>("--fault-control")
{
    Description = "With --broker-only: accept fault-injection commands on stdin ('errors <apiKey> <errorCode> <count>', 'down|up <brokerId>', 'rtt <brokerId> <ms>').",
};
var applicationId = new Option<string>("--application-id") { Description = "Processor application id whose internal topics to provision.", DefaultValueFactory = _ => "feed-processor" };

var root = new RootCommand("Feed pipeline development stack: embedded Kafka, processor and edge in one process. Ctrl-C stops it.")
{
    demo, users, rate, kafkaPort, grpcPort, webPort, partitions, brokerOnly, faultControl, applicationId,
    TokenCommand.Create(),
};
root.TreatUnmatchedTokensAsErrors = false;
root.SetAction(async (parse, cancellationToken) =>
{
    var settings = new DevStackSettings
    {
        Demo = parse.GetValue(demo),
        DemoUsers = parse.GetValue(users),
        DemoPostsPerSecond = parse.GetValue(rate),
        KafkaPort = parse.GetValue(kafkaPort),
        GrpcPort = parse.GetValue(grpcPort),
        WebPort = parse.GetValue(webPort),
        Partitions = parse.GetValue(partitions),
        FaultControl = parse.GetValue(faultControl),
    };

    if (parse.GetValue(brokerOnly))
    {
        await DevStackHost.RunBrokerOnlyAsync(settings, parse.GetValue(applicationId)!, cancellationToken);
        return 0;
    }

    await using var stack = await DevStackHost.CreateAsync(settings, [.. parse.UnmatchedTokens], cancellationToken);
    await stack.App.StartAsync(cancellationToken);
    Console.WriteLine($"""

        Feed pipeline is up.
          Kafka (embedded)   {stack.BootstrapServers}        kcat -b {stack.BootstrapServers} -L
          gRPC (HTTP/2)      http://127.0.0.1:{settings.GrpcPort}     feed.v1.FeedService, feed.v1.IngestService, reflection, grpc.health.v1
          grpc-web, health   http://127.0.0.1:{settings.WebPort}     /healthz
          JWT for calls      dotnet run --project src/DevStack -- token --user alice   (development key; see README)
        {(settings.Demo ? "Demo traffic is on." : "Start with --demo to generate traffic.")} Press Ctrl-C to stop.

        """);
    await stack.App.WaitForShutdownAsync(cancellationToken);
    return 0;
});

return await root.Parse(args).InvokeAsync();
