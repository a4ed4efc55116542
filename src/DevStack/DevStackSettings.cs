namespace Pipeline.DevStack;

/// <summary>What the development stack runs and where it listens.</summary>
public sealed record DevStackSettings
{
    /// <summary>Advertised port of the embedded broker; 0 picks random ports (tests).</summary>
    public int KafkaPort { get; init; } = 9092;

    public int GrpcPort { get; init; } = 5000;

    public int WebPort { get; init; } = 5001;

    public int Partitions { get; init; } = 6;

    /// <summary>RocksDB state directory of the processor; a fresh temporary one per run when null.</summary>
    public string? StateDir { get; init; }

    public bool Demo { get; init; }

    /// <summary>With --broker-only: read fault-injection commands for the mock cluster from stdin.</summary>
    public bool FaultControl { get; init; }

    public int DemoUsers { get; init; } = 200;

    public int DemoFollowsPerUser { get; init; } = 10;

    public double DemoPostsPerSecond { get; init; } = 20;

    public TimeSpan StatusInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Extra logging set-up after the defaults (tests add a capture of recent lines here).</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; init; }

    /// <summary>Extra configuration (same keys as appsettings.json, e.g. "Processor:Guarantee") applied last.</summary>
    public IReadOnlyDictionary<string, string?> Overrides { get; init; } = new Dictionary<string, string?>();
}
