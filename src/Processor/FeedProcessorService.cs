using System.Reflection;
using Confluent.Kafka;
using Microsoft.Extensions.Options;
using Pipeline.Kafka.Topics;
using Pipeline.Processor.Topology;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.Kafka;
using Streamiz.Kafka.Net.SerDes;

namespace Pipeline.Processor;

/// <summary>Hosts the feed topology: provisions topics (if configured), then runs the Kafka Streams instance.</summary>
public sealed partial class FeedProcessorService : BackgroundService
{
    private static readonly PropertyInfo[] ClientSettings = typeof(ClientConfig)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly)
        .Where(p => p.CanRead && p.GetIndexParameters().Length == 0)
        .ToArray();

    private readonly ProcessorOptions _options;
    private readonly ClientConfig _clientConfig;
    private readonly FeedTopicPlan _topics;
    private readonly ProcessorMetrics _metrics;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger<FeedProcessorService> _logger;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ExactlyOnceStateGuard _stateGuard;
    /// <summary>How long an abandoned processor may take to stop before the process exits regardless.</summary>
    private static readonly TimeSpan AbandonGrace = TimeSpan.FromSeconds(20);

    private KafkaStream? _stream;
    private IDisposable? _streamizLogging;
    private volatile bool _abandoned;

    public FeedProcessorService(
        IOptions<ProcessorOptions> options,
        IOptions<ClientConfig> clientConfig,
        FeedTopicPlan topics,
        ProcessorMetrics metrics,
        ILoggerFactory loggerFactory,
        IHostApplicationLifetime lifetime)
    {
        _lifetime = lifetime;
        _options = options.Value;
        _clientConfig = clientConfig.Value;
        _topics = topics;
        _metrics = metrics;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<FeedProcessorService>();
        _stateGuard = new ExactlyOnceStateGuard(_options, _logger);
    }

    /// <summary>RUNNING once the stream threads hold their partitions and restored their stores.</summary>
    public KafkaStream.State State { get; private set; } = KafkaStream.State.CREATED;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RunAsync(stoppingToken);
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            // The host stops on a failed background service but would still exit 0; a supervisor must see a failure.
            LogStartFailed(_logger, ex);
            Environment.ExitCode = 1;
            throw;
        }
    }

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        if (_options.ProvisionTopics)
        {
            var provisioner = new TopicProvisioner(_clientConfig.BootstrapServers, null, _loggerFactory.CreateLogger<TopicProvisioner>());
            await provisioner.EnsureAsync(_topics.All(), stoppingToken);
        }

        _stateGuard.BeforeStart();
        var topology = FeedTopology.Build(_options, _metrics);
        var config = StreamConfigFor(_options, _clientConfig);
        Action? onLostTasks = _options.Guarantee == DeliveryGuarantee.ExactlyOnce
            ? () =>
            {
                LogLostTasks(_logger);
                Abandon();
            }
            : null;
        _streamizLogging = StreamizLogging.Attach(config.ClientId, _loggerFactory, onLostTasks);

        _stream = new KafkaStream(topology, config, new DefaultKafkaClientSupplier(new KafkaLoggerAdapter(config), config, new ObservedKafkaClients(new RepartitionPurge(_metrics, _loggerFactory.CreateLogger<RepartitionPurge>()), _metrics)));
        _stream.StateChanged += (previous, current) =>
        {
            State = current;
            LogStateChanged(_logger, previous, current);
            if (current == KafkaStream.State.ERROR)
            {
                // Streamiz does not recover from ERROR (it reports internal-topic and fatal Kafka failures only this
                // way); exiting non-zero lets the supervisor restart the processor, which resumes from committed state.
                LogFatal(_logger, _options.ApplicationId);
                Environment.ExitCode = 1;
                _lifetime.StopApplication();
            }
        };
        LogStarting(_logger, _options.ApplicationId, _clientConfig.BootstrapServers, _options.Guarantee, _options.StateDir);
        await _stream.StartAsync(stoppingToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);

        // Dispose closes the stream threads: commits, flushes the producer and leaves the group cleanly. A stuck
        // stream thread would block it forever, so it gets the host's shutdown timeout and no more; the stores are
        // then not known to be clean, and the marker is not written.
        // Streamiz's lines about the close still reach this host; it detaches only once the close is over.
        using var detach = _streamizLogging;
        if (_stream is not null)
        {
            var closing = Task.Run(_stream.Dispose, CancellationToken.None);
            try
            {
                await closing.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                LogCloseTimedOut(_logger);
                Environment.ExitCode = 1;
                return;
            }

            if (State != KafkaStream.State.ERROR && !_abandoned)
            {
                _stateGuard.AfterCleanStop();
            }
        }
    }

    /// <summary>
    /// Stop with exit code 1 and without the clean-shutdown marker, so that the next start rebuilds the stores from
    /// the changelogs: the stream made no progress (see <see cref="ProgressWatchdog"/>) or its tasks were closed
    /// dirty (see <see cref="StreamizLogging.WatchForLostTasks"/>). If a stuck stream thread blocks the shutdown,
    /// the process exits anyway after a grace period.
    /// </summary>
    public void Abandon()
    {
        if (_abandoned)
        {
            return;
        }

        _abandoned = true;
        Environment.ExitCode = 1;
        _lifetime.StopApplication();
        _ = Task.Delay(AbandonGrace, _lifetime.ApplicationStopped).ContinueWith(
            waited =>
            {
                if (!waited.IsCanceled)
                {
                    Environment.Exit(1);
                }
            },
            TaskScheduler.Default);
    }

    /// <summary>Streamiz configuration: the shared Kafka client settings plus the processing settings.</summary>
    public static FeedStreamConfig StreamConfigFor(ProcessorOptions options, ClientConfig client)
    {
        var config = new FeedStreamConfig
        {
            ApplicationId = options.ApplicationId,

            // Unique per instance: it prefixes the stream threads' log lines, which WatchForLostTasks matches on.
            ClientId = $"{options.ApplicationId}-{Guid.NewGuid():N}",
            StateDir = options.StateDir,
            Guarantee = options.Guarantee == DeliveryGuarantee.ExactlyOnce ? ProcessingGuarantee.EXACTLY_ONCE : ProcessingGuarantee.AT_LEAST_ONCE,
            NumStreamThreads = options.StreamThreads,
            // After Guarantee: setting EXACTLY_ONCE resets the commit interval to its own default.
            CommitIntervalMs = options.EffectiveCommitIntervalMs,

            FetchWaitMaxMs = options.FetchWaitMaxMs,
            LingerMs = options.LingerMs,
            PollMs = options.PollMs,

            // A new application reads its inputs from the beginning, as Kafka Streams does.
            AutoOffsetReset = AutoOffsetReset.Earliest,
            ReplicationFactor = options.ReplicationFactor,
            Logger = StreamizLogging.Instance,

            // One memory bound for every store of the process (memtables and block cache), instead of Streamiz's
            // default per store (3 × 16 MiB memtables and a 50 MiB cache each, times stores × partitions).
            RocksDbConfigHandler = new RocksDbMemory(options.RocksDbMemoryMb).Apply,
            SessionTimeoutMs = options.SessionTimeoutMs,
        };

        CopyClientSettings(client, config);

        // Java's default partitioner, so input produced by any Kafka client lands where Streamiz expects it.
        config.Partitioner = Partitioner.Murmur2Random;
        return config;
    }

    /// <summary>
    /// Streamiz re-declares Confluent's typed client settings (security, SASL, timeouts...) as properties of the
    /// same names and types; copying them by property keeps one "Kafka" section for every client.
    /// </summary>
    private static void CopyClientSettings(ClientConfig client, StreamConfig target)
    {
        foreach (var source in ClientSettings)
        {
            var value = source.GetValue(client);
            var destination = typeof(StreamConfig).GetProperty(source.Name, BindingFlags.Public | BindingFlags.Instance);
            if (value is not null && destination is { CanWrite: true } && destination.PropertyType == source.PropertyType)
            {
                destination.SetValue(target, value);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Starting feed processor {ApplicationId} on {BootstrapServers} ({Guarantee}, state in {StateDir})")]
    private static partial void LogStarting(ILogger logger, string applicationId, string bootstrapServers, DeliveryGuarantee guarantee, string stateDir);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Feed processor {ApplicationId} entered ERROR state and is stopping; see the errors above (broker reachable? topics provisioned with matching partition counts?)")]
    private static partial void LogFatal(ILogger logger, string applicationId);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Feed processor failed and is stopping")]
    private static partial void LogStartFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Critical, Message = "A stream thread closed its tasks dirty (see the Streamiz warning above); their local stores may hold writes of the aborted transaction, so the processor stops with exit code 1 and rebuilds them from the changelogs when restarted")]
    private static partial void LogLostTasks(ILogger logger);

    [LoggerMessage(Level = LogLevel.Critical, Message = "The stream threads did not stop within the host's shutdown timeout (HostOptions:ShutdownTimeout); exiting with code 1 and without the clean-shutdown marker, so the next start rebuilds the stores")]
    private static partial void LogCloseTimedOut(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Feed processor state {Previous} -> {Current}")]
    private static partial void LogStateChanged(ILogger logger, KafkaStream.State previous, KafkaStream.State current);
}
