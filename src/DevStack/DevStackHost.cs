using Confluent.Kafka;
using System.Globalization;
using Microsoft.Extensions.Options;
using Pipeline.Kafka.Embedded;
using Pipeline.Kafka.Topics;
using Pipeline.Processor;
using Pipeline.StreamEdge;

namespace Pipeline.DevStack;

/// <summary>
/// The whole pipeline in one process for development and tests: the embedded broker, then the processor and the
/// edge exactly as they run in production (same registration code), wired to it by configuration only.
/// </summary>
public sealed class DevStackHost : IAsyncDisposable
{
    private readonly EmbeddedKafkaCluster _cluster;
    private readonly string _stateDir;
    private readonly bool _ownsStateDir;

    private DevStackHost(EmbeddedKafkaCluster cluster, WebApplication app, string stateDir, bool ownsStateDir)
    {
        _cluster = cluster;
        App = app;
        _stateDir = stateDir;
        _ownsStateDir = ownsStateDir;
    }

    public WebApplication App { get; }

    public EmbeddedKafkaCluster Cluster => _cluster;

    public string BootstrapServers => _cluster.BootstrapServers;

    /// <summary>Starts the broker, provisions the topics, and builds (but does not start) the hosts.</summary>
    public static async Task<DevStackHost> CreateAsync(DevStackSettings settings, string[] args, CancellationToken cancellationToken)
    {
        var ownsStateDir = settings.StateDir is null;
        var stateDir = settings.StateDir ?? Path.Combine(Path.GetTempPath(), $"feed-pipeline-{Environment.ProcessId}-{Guid.NewGuid():N}");

        var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = settings.KafkaPort, DefaultPartitions = settings.Partitions });
        try
        {
            var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });

            // Defaults first, so that environment variables and command-line arguments still override them.
            builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource
            {
                InitialData = new Dictionary<string, string?>
                {
                    ["Logging:LogLevel:Default"] = "Information",
                    ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
                    ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
                    ["Logging:LogLevel:Streamiz"] = "Warning",

                    // Streams ending with UNAVAILABLE at shutdown are the documented behaviour, not news.
                    ["Logging:LogLevel:Grpc"] = "Warning",

                    // Development identity: tokens signed with the public development key (see DevTokens and
                    // the README). Production edges take Auth:Authority or their own keys instead.
                    ["Auth:Issuer"] = DevTokens.Issuer,
                    ["Auth:Audience"] = DevTokens.Audience,
                    ["Auth:SigningKeys:0"] = DevTokens.SigningKey,
                    ["Cors:AllowedOrigins:0"] = "http://localhost:5173",
                    ["Cors:AllowedOrigins:1"] = "http://localhost:3000",
                },
            });
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Kafka:BootstrapServers"] = cluster.BootstrapServers,
                ["Kestrel:Limits:Http2:KeepAlivePingDelay"] = "00:00:30",
                ["Kestrel:Limits:Http2:KeepAlivePingTimeout"] = "00:00:20",
                ["Kestrel:Limits:Http2:MaxStreamsPerConnection"] = "1000",
                ["Kestrel:Endpoints:Grpc:Url"] = $"http://127.0.0.1:{settings.GrpcPort}",
                ["Kestrel:Endpoints:Grpc:Protocols"] = "Http2",
                ["Kestrel:Endpoints:Web:Url"] = $"http://127.0.0.1:{settings.WebPort}",
                ["Kestrel:Endpoints:Web:Protocols"] = "Http1",
                ["Processor:StateDir"] = Path.Combine(stateDir, "processor"),
                ["Edge:StateDir"] = Path.Combine(stateDir, "edge"),

                // Development only: a fixed, public key, so that cursors survive restarts of the dev stack.
                ["Edge:CursorSigningKey"] = "ZGV2LW9ubHktY3Vyc29yLWtleS1mZWVkLXBpcGVsaW5lLTAwMDA=",
                ["Processor:ProvisionTopics"] = "false",
                ["Processor:TopicPartitions"] = settings.Partitions.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Processor:ReplicationFactor"] = "1",

                // The embedded broker answers an empty fetch only when fetch.wait.max.ms expires (a real broker
                // answers as soon as data arrives), so each topology hop waited up to the 50 ms default.
                ["Processor:FetchWaitMaxMs"] = "10",
            });
            builder.Configuration.AddInMemoryCollection(settings.Overrides);

            settings.ConfigureLogging?.Invoke(builder.Logging);
            builder.AddStreamEdge();
            builder.Services.AddFeedProcessor();
            builder.Services.AddSingleton(settings);
            if (settings.StatusInterval > TimeSpan.Zero)
            {
                builder.Services.AddHostedService<StatusReporter>();
            }

            if (settings.Demo)
            {
                builder.Services.AddHostedService<DemoTraffic>();
            }

            var app = builder.Build();
            app.MapStreamEdge();

            // The embedded broker has no CreateTopics API, so every topic, internal ones included, is created
            // through the mock API before any client asks for it.
            var topics = app.Services.GetRequiredService<FeedTopicPlan>().All();
            var provisioner = new TopicProvisioner(cluster.BootstrapServers, cluster, app.Services.GetRequiredService<ILogger<TopicProvisioner>>());
            await provisioner.EnsureAsync(topics, cancellationToken);

            return new DevStackHost(cluster, app, stateDir, ownsStateDir);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Only the embedded broker, with every topic of the processor <paramref name="applicationId"/> provisioned, until
    /// cancelled: the benchmark and fault harnesses run the processor and the edge as separate processes against it.
    /// </summary>
    public static async Task RunBrokerOnlyAsync(DevStackSettings settings, string applicationId, CancellationToken cancellationToken)
    {
        using var loggers = LoggerFactory.Create(logging => logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaOptions { Port = settings.KafkaPort, DefaultPartitions = settings.Partitions });
        var plan = new FeedTopicPlan(Options.Create(new ProcessorOptions { ApplicationId = applicationId, TopicPartitions = settings.Partitions, ReplicationFactor = 1 }));
        await new TopicProvisioner(cluster.BootstrapServers, cluster, loggers.CreateLogger<TopicProvisioner>()).EnsureAsync(plan.All(), cancellationToken);
        Console.WriteLine($"Embedded Kafka broker ready at {cluster.BootstrapServers} ({settings.Partitions} partitions, topics of {applicationId}). Ctrl-C stops it.");
        if (settings.FaultControl)
        {
            Console.WriteLine("Fault control on stdin: 'errors <apiKey> <errorCode> <count>', 'down <brokerId>', 'up <brokerId>', 'rtt <brokerId> <ms>'.");
            _ = Task.Run(() => ReadFaultCommands(cluster, cancellationToken), cancellationToken);
        }

        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Applies fault-injection commands read from stdin to the mock cluster, one per line, answering each with
    /// "fault ok: …" or "fault refused: …" (the fault battery drives a broker in another process this way).
    /// </summary>
    private static void ReadFaultCommands(EmbeddedKafkaCluster cluster, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && Console.In.ReadLine() is { } line)
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            try
            {
                switch (words)
                {
                    case ["errors", var api, var code, var count]:
                        cluster.PushRequestErrors(short.Parse(api, CultureInfo.InvariantCulture), Enumerable.Repeat((ErrorCode)int.Parse(code, CultureInfo.InvariantCulture), int.Parse(count, CultureInfo.InvariantCulture)).ToArray());
                        break;
                    case ["down", var broker]:
                        cluster.SetBrokerDown(int.Parse(broker, CultureInfo.InvariantCulture));
                        break;
                    case ["up", var broker]:
                        cluster.SetBrokerUp(int.Parse(broker, CultureInfo.InvariantCulture));
                        break;
                    case ["rtt", var broker, var ms]:
                        cluster.SetBrokerRtt(int.Parse(broker, CultureInfo.InvariantCulture), TimeSpan.FromMilliseconds(int.Parse(ms, CultureInfo.InvariantCulture)));
                        break;
                    default:
                        Console.WriteLine($"fault refused: unknown command '{line}'");
                        continue;
                }

                Console.WriteLine($"fault ok: {line}");
            }
            catch (Exception ex) when (ex is FormatException or OverflowException or KafkaException or InvalidOperationException)
            {
                Console.WriteLine($"fault refused: {line}: {ex.Message}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await App.DisposeAsync();
        await _cluster.DisposeAsync();
        if (_ownsStateDir && Directory.Exists(_stateDir))
        {
            Directory.Delete(_stateDir, recursive: true);
        }
    }
}
