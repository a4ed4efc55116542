using System.Reflection;
using System.Runtime.InteropServices;

namespace Pipeline.Kafka.Embedded;

/// <summary>
/// P/Invoke surface for the parts of librdkafka Confluent.Kafka does not expose: a bare client handle and the
/// mock cluster API (src/rdkafka_mock.h).
/// </summary>
/// <remarks>
/// The calls must land in the very library Confluent.Kafka loaded: the mock speaks to clients over TCP so two
/// copies would still interoperate, but a second copy doubles global state and, on Debian, the default
/// librdkafka.so cannot even be loaded (it needs libsasl2.so.3), so Confluent silently falls back to
/// centos8-librdkafka.so. The resolver below therefore asks the process which copy is mapped.
/// </remarks>
internal static unsafe partial class LibrdkafkaNative
{
    private const string LibraryName = "librdkafka";

    internal const int ProducerType = 0;

    private static readonly Lock InitLock = new();
    private static nint _handle;

    internal static string? LoadedPath { get; private set; }

    /// <summary>Loads librdkafka through Confluent.Kafka and routes this assembly's imports to that copy.</summary>
    internal static void EnsureLoaded()
    {
        lock (InitLock)
        {
            if (_handle != 0)
            {
                return;
            }

            Confluent.Kafka.Library.Load();
            var (handle, path) = LoadSameCopyAsConfluent();
            LoadedPath = path;
            _handle = handle;
            NativeLibrary.SetDllImportResolver(typeof(LibrdkafkaNative).Assembly, Resolve);
        }
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName == LibraryName ? _handle : 0;

    private static (nint Handle, string Path) LoadSameCopyAsConfluent()
    {
        foreach (var path in MappedLibrdkafkaPaths())
        {
            if (NativeLibrary.TryLoad(path, out var handle))
            {
                return (handle, path);
            }
        }

        // Why this order: it is the order Confluent.Kafka itself tries, so the first that loads is the one it got.
        foreach (var path in CandidatePaths())
        {
            if (NativeLibrary.TryLoad(path, out var handle))
            {
                return (handle, path);
            }
        }

        throw new DllNotFoundException(
            "Could not locate the librdkafka library loaded by Confluent.Kafka (looked in /proc/self/maps and the runtimes/ folders next to the application).");
    }

    private static IEnumerable<string> MappedLibrdkafkaPaths()
    {
        const string Maps = "/proc/self/maps";
        if (!OperatingSystem.IsLinux() || !File.Exists(Maps))
        {
            yield break;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(Maps))
        {
            var slash = line.IndexOf('/', StringComparison.Ordinal);
            if (slash < 0)
            {
                continue;
            }

            var path = line[slash..].TrimEnd();
            var fileName = Path.GetFileName(path);
            if (fileName.Contains("librdkafka", StringComparison.Ordinal)
                && (fileName.EndsWith(".so", StringComparison.Ordinal) || fileName.Contains(".so.", StringComparison.Ordinal))
                && seen.Add(path))
            {
                yield return path;
            }
        }
    }

    private static IEnumerable<string> CandidatePaths()
    {
        var arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
        (string Rid, string[] Names) target =
            OperatingSystem.IsWindows() ? ($"win-{arch}", ["librdkafka.dll"])
            : OperatingSystem.IsMacOS() ? ($"osx-{arch}", ["librdkafka.dylib"])
            : ($"linux-{arch}", ["librdkafka.so", "centos8-librdkafka.so", "alpine-librdkafka.so"]);

        var roots = new[] { AppContext.BaseDirectory, Path.GetDirectoryName(typeof(Confluent.Kafka.Library).Assembly.Location) }
            .Where(root => !string.IsNullOrEmpty(root))
            .Distinct(StringComparer.Ordinal);

        foreach (var root in roots)
        {
            foreach (var name in target.Names)
            {
                yield return Path.Combine(root!, "runtimes", target.Rid, "native", name);
                yield return Path.Combine(root!, name);
            }
        }
    }

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_conf_new")]
    internal static partial nint ConfNew();

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_conf_destroy")]
    internal static partial void ConfDestroy(nint conf);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_conf_set", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int ConfSet(nint conf, string name, string value, byte* errstr, nuint errstrSize);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_conf_set_opaque")]
    internal static partial void ConfSetOpaque(nint conf, nint opaque);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_conf_set_log_cb")]
    internal static partial void ConfSetLogCallback(nint conf, delegate* unmanaged[Cdecl]<nint, int, byte*, byte*, void> callback);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_opaque")]
    internal static partial nint Opaque(nint rk);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_new")]
    internal static partial nint New(int type, nint conf, byte* errstr, nuint errstrSize);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_destroy")]
    internal static partial void Destroy(nint rk);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_cluster_new")]
    internal static partial nint MockClusterNew(nint rk, int brokerCount);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_cluster_destroy")]
    internal static partial void MockClusterDestroy(nint mcluster);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_cluster_bootstraps")]
    internal static partial byte* MockClusterBootstraps(nint mcluster);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_topic_create", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int MockTopicCreate(nint mcluster, string topic, int partitionCount, int replicationFactor);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_broker_set_host_port", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial void MockBrokerSetHostPort(nint mcluster, int brokerId, string host, int port);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_group_initial_rebalance_delay_ms")]
    internal static partial void MockGroupInitialRebalanceDelayMs(nint mcluster, int delayMs);

    // Why void: whether it returns an error code differs between librdkafka versions; ignoring a returned int is safe.
    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_set_controller_id")]
    internal static partial void MockSetControllerId(nint mcluster, int brokerId);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_push_request_errors_array")]
    internal static partial void MockPushRequestErrorsArray(nint mcluster, short apiKey, nuint count, int* errors);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_broker_set_down")]
    internal static partial int MockBrokerSetDown(nint mcluster, int brokerId);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_broker_set_up")]
    internal static partial int MockBrokerSetUp(nint mcluster, int brokerId);

    [LibraryImport(LibraryName, EntryPoint = "rd_kafka_mock_broker_set_rtt")]
    internal static partial int MockBrokerSetRtt(nint mcluster, int brokerId, int rttMs);
}
