namespace Pipeline.Processor;

/// <summary>
/// The logger factory handed to Streamiz. Streamiz keeps the first factory it is given in a process-wide static
/// and uses it for every topology built afterwards; if that were a host's own factory, any processor host started
/// after the first one was disposed (tests, an in-process restart) would fail with ObjectDisposedException. This
/// factory lives as long as the process, ignores Dispose, and forwards to the factory of the host that runs now.
/// </summary>
public sealed class StreamizLogging : ILoggerFactory
{
    /// <summary>
    /// What Streamiz 1.8 logs (category StreamThread, level Warning) when a stream thread closes all its tasks as
    /// zombies and rejoins the group: after a fenced producer, an aborted transaction or an error it was told to
    /// continue after. Its tasks are closed dirty, but their local stores are kept: see <see cref="WatchForLostTasks"/>.
    /// </summary>
    private const string LostTasksMessage = "Detected that the thread";

    private static volatile ILoggerFactory _current = Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Action> LostTasksWatchers = new();

    private StreamizLogging()
    {
    }

    public static StreamizLogging Instance { get; } = new();

    /// <summary>Routes Streamiz's logging to <paramref name="factory"/> from now on.</summary>
    public static void Use(ILoggerFactory factory) => _current = factory;

    /// <summary>
    /// Calls <paramref name="onLost"/> when a stream thread of the client <paramref name="clientId"/> closes its
    /// tasks dirty. Streamiz then aborts the transaction but keeps the tasks' RocksDB stores, which hold the aborted
    /// transaction's writes, and reopens them from there; under exactly-once that silently turns re-processed input
    /// into "already applied". Kafka Streams wipes such stores; the processor restarts instead, and
    /// <see cref="ExactlyOnceStateGuard"/> rebuilds them from the changelogs.
    /// </summary>
    public static IDisposable WatchForLostTasks(string clientId, Action onLost)
    {
        LostTasksWatchers[clientId] = onLost;
        return new Unwatch(clientId);
    }

    public ILogger CreateLogger(string categoryName) => new ForwardingLogger(categoryName);

    /// <summary>A stream thread's warning: notifies the watcher of the client it names if it reports lost tasks.</summary>
    private static void Inspect(string message)
    {
        if (!message.Contains(LostTasksMessage, StringComparison.Ordinal))
        {
            return;
        }

        foreach (var (clientId, onLost) in LostTasksWatchers)
        {
            if (message.Contains(clientId, StringComparison.Ordinal))
            {
                onLost();
            }
        }
    }

    private sealed class Unwatch(string clientId) : IDisposable
    {
        public void Dispose() => LostTasksWatchers.TryRemove(clientId, out _);
    }

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    /// <summary>Resolves the current host's logger on every call, so a logger Streamiz cached stays usable after a host restart.</summary>
    private sealed class ForwardingLogger(string categoryName) : ILogger
    {
        private ILoggerFactory? _factory;
        private ILogger _logger = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => Current.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => Current.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Warning && !LostTasksWatchers.IsEmpty && categoryName.EndsWith(".StreamThread", StringComparison.Ordinal))
            {
                Inspect(formatter(state, exception));
            }

            try
            {
                Current.Log(logLevel, eventId, state, exception, formatter);
            }
            catch (ObjectDisposedException)
            {
                // The host that owned the factory is gone (between its shutdown and the next host's start); the line is dropped.
            }
        }

        private ILogger Current
        {
            get
            {
                var factory = _current;
                if (!ReferenceEquals(factory, _factory))
                {
                    _logger = factory.CreateLogger(categoryName);
                    _factory = factory;
                }

                return _logger;
            }
        }
    }
}
