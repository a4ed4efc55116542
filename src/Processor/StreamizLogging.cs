namespace Pipeline.Processor;

/// <summary>
/// The logger factory handed to Streamiz. Streamiz keeps the first factory it is given in a process-wide static
/// and uses it for every topology built afterwards; if that were a host's own factory, any processor host started
/// after the first one was disposed (tests, an in-process restart) would fail with ObjectDisposedException. This
/// factory lives as long as the process, ignores Dispose, and forwards to the factory of the host that runs now.
/// </summary>
public sealed class StreamizLogging : ILoggerFactory
{
    private static volatile ILoggerFactory _current = Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;

    private StreamizLogging()
    {
    }

    public static StreamizLogging Instance { get; } = new();

    /// <summary>Routes Streamiz's logging to <paramref name="factory"/> from now on.</summary>
    public static void Use(ILoggerFactory factory) => _current = factory;

    public ILogger CreateLogger(string categoryName) => new ForwardingLogger(categoryName);

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
