using System.Globalization;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Pipeline.Kafka.Embedded;

/// <summary>
/// An in-process Kafka cluster for development and tests: librdkafka's mock cluster, which speaks the real Kafka
/// protocol over loopback TCP. Any Kafka client (Confluent.Kafka, Streamiz, kcat, ...) can connect to
/// <see cref="BootstrapServers"/>.
/// </summary>
/// <remarks>
/// <para>What the mock implements: Produce, Fetch, ListOffsets, Metadata, consumer groups with offset commits,
/// idempotent and transactional producers. What it does not: the topic and config admin APIs (CreateTopics,
/// DeleteTopics, CreatePartitions, DescribeConfigs, DeleteRecords, ...), log compaction and per-topic configs such
/// as retention.ms. Each partition is an in-memory log holding only the newest ~5 MiB or 100,000 batches; older
/// batches are dropped as if by retention, so a consumer that falls further behind resets per auto.offset.reset.</para>
/// <para>Auto-creation: a Metadata request naming an unknown topic with AllowAutoTopicCreation set creates it with
/// 4 partitions (hard-coded in librdkafka, not <see cref="EmbeddedKafkaOptions.DefaultPartitions"/>) and
/// replication factor min(3, brokers). librdkafka producers send that flag by default
/// (allow.auto.create.topics=true for producers) so producing to an unknown topic silently creates a 4-partition
/// topic; consumers default to false and get UNKNOWN_TOPIC_OR_PART instead. Metadata requests for all topics
/// (e.g. <c>kcat -L</c>, <c>IAdminClient.GetMetadata(timeout)</c>) never create anything. Create topics up front,
/// through <see cref="CreateTopic"/> or <c>TopicProvisioner</c>, before any producer touches them.</para>
/// </remarks>
public sealed partial class EmbeddedKafkaCluster : IDisposable, IAsyncDisposable
{
    private const string AdvertisedHost = "127.0.0.1";
    private const int ErrorBufferSize = 512;

    private readonly EmbeddedKafkaOptions _options;
    private readonly ILogger _logger;
    private readonly List<LoopbackForwarder> _forwarders = [];
    private GCHandle _loggerHandle;
    private nint _client;
    private nint _mockCluster;
    private int _disposed;

    private EmbeddedKafkaCluster(EmbeddedKafkaOptions options, ILogger logger)
    {
        _options = options;
        _logger = logger;
        BootstrapServers = string.Empty;
    }

    /// <summary>The comma-separated host:port list clients should use as bootstrap.servers.</summary>
    public string BootstrapServers { get; private set; }

    /// <summary>The mock brokers' own random loopback listeners (equal to <see cref="BootstrapServers"/> when Port is 0).</summary>
    public string MockListeners { get; private set; } = string.Empty;

    public int BrokerCount => _options.BrokerCount;

    public static EmbeddedKafkaCluster Start(EmbeddedKafkaOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BrokerCount, 1, nameof(options.BrokerCount));
        ArgumentOutOfRangeException.ThrowIfNegative(options.Port, nameof(options.Port));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Port, 65536 - options.BrokerCount, nameof(options.Port));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.DefaultPartitions, 1, nameof(options.DefaultPartitions));

        LibrdkafkaNative.EnsureLoaded();

        var snapshot = new EmbeddedKafkaOptions
        {
            BrokerCount = options.BrokerCount,
            Port = options.Port,
            DefaultPartitions = options.DefaultPartitions,
        };
        var cluster = new EmbeddedKafkaCluster(snapshot, logger ?? NullLogger.Instance);
        try
        {
            cluster.Initialize();
        }
        catch
        {
            cluster.Dispose();
            throw;
        }

        return cluster;
    }

    /// <summary>
    /// Creates a topic; does nothing if it already exists (whatever its partition count).
    /// 0 partitions means <see cref="EmbeddedKafkaOptions.DefaultPartitions"/>. A replication factor above the
    /// broker count is capped to it by the mock rather than rejected, so production specs work on one broker.
    /// </summary>
    public void CreateTopic(string name, int partitions, int replicationFactor) =>
        TryCreateTopic(name, partitions, replicationFactor);

    /// <summary>Queues errors the cluster returns, in order, to the next requests of <paramref name="apiKey"/> (e.g. 0 = Produce).</summary>
    public unsafe void PushRequestErrors(short apiKey, params ErrorCode[] errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        ThrowIfDisposed();
        if (errors.Length == 0)
        {
            return;
        }

        fixed (ErrorCode* codes = errors)
        {
            LibrdkafkaNative.MockPushRequestErrorsArray(_mockCluster, apiKey, (nuint)errors.Length, (int*)codes);
        }
    }

    /// <summary>
    /// Closes the broker's listener and connections; it keeps its partitions and leadership but refuses
    /// connections until <see cref="SetBrokerUp"/>. Broker ids are 1..BrokerCount; -1 means all brokers.
    /// </summary>
    public void SetBrokerDown(int brokerId)
    {
        ThrowIfDisposed();
        ThrowOnError(LibrdkafkaNative.MockBrokerSetDown(_mockCluster, brokerId), $"set broker {brokerId} down");
    }

    /// <summary>Makes a broker accept connections again on the same port; -1 means all brokers.</summary>
    public void SetBrokerUp(int brokerId)
    {
        ThrowIfDisposed();
        ThrowOnError(LibrdkafkaNative.MockBrokerSetUp(_mockCluster, brokerId), $"set broker {brokerId} up");
    }

    /// <summary>Delays every response of the broker by <paramref name="rtt"/>; -1 means all brokers.</summary>
    public void SetBrokerRtt(int brokerId, TimeSpan rtt)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rtt, TimeSpan.Zero);
        ThrowIfDisposed();
        var milliseconds = (int)Math.Min(rtt.TotalMilliseconds, int.MaxValue);
        ThrowOnError(LibrdkafkaNative.MockBrokerSetRtt(_mockCluster, brokerId, milliseconds), $"set broker {brokerId} rtt");
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var forwarder in _forwarders)
        {
            forwarder.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        DestroyNative();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var forwarder in _forwarders)
        {
            await forwarder.DisposeAsync();
        }

        DestroyNative();
    }

    /// <returns>true if the topic was created, false if it already existed.</returns>
    internal bool TryCreateTopic(string name, int partitions, int replicationFactor)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentOutOfRangeException.ThrowIfNegative(partitions);
        ArgumentOutOfRangeException.ThrowIfLessThan(replicationFactor, 1);
        ThrowIfDisposed();

        var partitionCount = partitions == 0 ? _options.DefaultPartitions : partitions;
        var error = (ErrorCode)LibrdkafkaNative.MockTopicCreate(_mockCluster, name, partitionCount, replicationFactor);
        switch (error)
        {
            case ErrorCode.NoError:
                LogTopicCreated(name, partitionCount, Math.Min(replicationFactor, _options.BrokerCount));
                return true;
            case ErrorCode.TopicAlreadyExists:
                return false;
            default:
                throw new KafkaException(new Error(error, $"Embedded Kafka could not create topic '{name}': {error}"));
        }
    }

    private unsafe void Initialize()
    {
        _loggerHandle = GCHandle.Alloc(_logger);

        var conf = LibrdkafkaNative.ConfNew();
        try
        {
            SetConf(conf, "client.id", "pipeline-embedded-kafka");
            if (_logger.IsEnabled(LogLevel.Trace))
            {
                SetConf(conf, "debug", "mock");
            }
        }
        catch
        {
            LibrdkafkaNative.ConfDestroy(conf);
            throw;
        }

        LibrdkafkaNative.ConfSetOpaque(conf, GCHandle.ToIntPtr(_loggerHandle));
        LibrdkafkaNative.ConfSetLogCallback(conf, &OnLibrdkafkaLog);

        var errorText = stackalloc byte[ErrorBufferSize];
        _client = LibrdkafkaNative.New(LibrdkafkaNative.ProducerType, conf, errorText, ErrorBufferSize);
        if (_client == 0)
        {
            // Why: rd_kafka_new takes ownership of conf only when it succeeds.
            LibrdkafkaNative.ConfDestroy(conf);
            throw new InvalidOperationException($"rd_kafka_new failed: {Marshal.PtrToStringUTF8((nint)errorText)}");
        }

        _mockCluster = LibrdkafkaNative.MockClusterNew(_client, _options.BrokerCount);
        if (_mockCluster == 0)
        {
            throw new InvalidOperationException("rd_kafka_mock_cluster_new failed; see the librdkafka log for the reason.");
        }

        // Why: the mock defaults to Kafka's 3 s group.initial.rebalance.delay.ms, which makes every first
        // consumer-group join (tests, dev restarts) wait 3 s for no benefit.
        LibrdkafkaNative.MockGroupInitialRebalanceDelayMs(_mockCluster, 0);
        SetControllerToFirstBroker();

        MockListeners = Marshal.PtrToStringUTF8((nint)LibrdkafkaNative.MockClusterBootstraps(_mockCluster)) ?? string.Empty;
        BootstrapServers = _options.Port == 0 ? MockListeners : ExposeOnFixedPorts(MockListeners);

        LogStarted(_options.BrokerCount, BootstrapServers, MockListeners, LibrdkafkaNative.LoadedPath);
    }

    /// <remarks>
    /// Out of the box the mock advertises no usable controller, so every admin request that needs one
    /// (CreateTopics, DescribeConfigs, ...) waits out its whole request timeout and then fails with "Failed while
    /// waiting for controller: Local: Timed out". With broker 1 as controller, librdkafka rejects those requests
    /// at once with "... not supported by broker", so callers (e.g. Streamiz creating internal topics) fail fast
    /// with a message that names the real problem.
    /// </remarks>
    private void SetControllerToFirstBroker()
    {
        try
        {
            LibrdkafkaNative.MockSetControllerId(_mockCluster, 1);
        }
        catch (EntryPointNotFoundException)
        {
            // Older librdkafka: admin requests then time out instead of failing fast; nothing else changes.
        }
    }

    /// <remarks>
    /// The mock only listens on random ports, so each broker N gets a forwarder on Port + N - 1 and is advertised
    /// there in Metadata; clients bootstrapped at the fixed address then keep going through the forwarders.
    /// </remarks>
    private string ExposeOnFixedPorts(string mockListeners)
    {
        var mockPorts = mockListeners
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(endpoint => int.Parse(endpoint[(endpoint.LastIndexOf(':') + 1)..], NumberStyles.None, CultureInfo.InvariantCulture))
            .ToArray();
        if (mockPorts.Length != _options.BrokerCount)
        {
            throw new InvalidOperationException($"Unexpected mock bootstrap list '{mockListeners}' for {_options.BrokerCount} broker(s).");
        }

        var advertised = new List<string>(mockPorts.Length);
        for (var index = 0; index < mockPorts.Length; index++)
        {
            var brokerId = index + 1;
            var port = _options.Port + index;
            try
            {
                _forwarders.Add(LoopbackForwarder.Start(port, mockPorts[index], _logger));
            }
            catch (SocketException ex)
            {
                throw new InvalidOperationException(
                    $"Embedded Kafka cannot listen on {AdvertisedHost}:{port} ({ex.SocketErrorCode}); is another broker already running there?", ex);
            }

            LibrdkafkaNative.MockBrokerSetHostPort(_mockCluster, brokerId, AdvertisedHost, port);
            advertised.Add($"{AdvertisedHost}:{port}");
        }

        return string.Join(',', advertised);
    }

    private void DestroyNative()
    {
        // Order matters: the mock cluster runs on the client handle's machinery, so it must go first.
        if (_mockCluster != 0)
        {
            LibrdkafkaNative.MockClusterDestroy(_mockCluster);
            _mockCluster = 0;
        }

        if (_client != 0)
        {
            LibrdkafkaNative.Destroy(_client);
            _client = 0;
        }

        // Freed last: librdkafka threads may log until rd_kafka_destroy has joined them.
        if (_loggerHandle.IsAllocated)
        {
            _loggerHandle.Free();
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private static void ThrowOnError(int error, string action)
    {
        if (error != 0)
        {
            var code = (ErrorCode)error;
            throw new KafkaException(new Error(code, $"Embedded Kafka could not {action}: {code}"));
        }
    }

    private static unsafe void SetConf(nint conf, string name, string value)
    {
        var errorText = stackalloc byte[ErrorBufferSize];
        if (LibrdkafkaNative.ConfSet(conf, name, value, errorText, ErrorBufferSize) != 0)
        {
            throw new InvalidOperationException($"rd_kafka_conf_set({name}) failed: {Marshal.PtrToStringUTF8((nint)errorText)}");
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnLibrdkafkaLog(nint client, int level, byte* facility, byte* message)
    {
        try
        {
            var opaque = LibrdkafkaNative.Opaque(client);
            if (opaque == 0 || GCHandle.FromIntPtr(opaque).Target is not ILogger logger)
            {
                return;
            }

            // syslog levels: 0-2 emergency..critical, 3 error, 4 warning, 5 notice, 6 info, 7 debug.
            var logLevel = level switch
            {
                <= 2 => LogLevel.Critical,
                3 => LogLevel.Error,
                4 => LogLevel.Warning,
                // Why Debug for notice/info: the only routine ones are about this handle having no bootstrap.servers.
                5 or 6 => LogLevel.Debug,
                _ => LogLevel.Debug,
            };
            if (logger.IsEnabled(logLevel))
            {
                LogLibrdkafka(logger, logLevel, Marshal.PtrToStringUTF8((nint)facility) ?? string.Empty, Marshal.PtrToStringUTF8((nint)message) ?? string.Empty);
            }
        }
        catch (Exception)
        {
            // Why: an exception escaping into native code would crash the process; losing one log line is fine.
        }
    }

    [LoggerMessage(Message = "librdkafka mock [{Facility}] {Text}")]
    private static partial void LogLibrdkafka(ILogger logger, LogLevel level, string facility, string text);

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedded Kafka started: {BrokerCount} broker(s) at {BootstrapServers} (mock listeners {MockListeners}, librdkafka {LibraryPath})")]
    private partial void LogStarted(int brokerCount, string bootstrapServers, string mockListeners, string? libraryPath);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Embedded Kafka created topic {Topic} with {Partitions} partition(s), replication factor {ReplicationFactor}")]
    private partial void LogTopicCreated(string topic, int partitions, int replicationFactor);
}
