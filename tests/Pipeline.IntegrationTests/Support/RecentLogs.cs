using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Pipeline.IntegrationTests.Support;

/// <summary>
/// Keeps the last few hundred log lines of a host (every category, Information and up) whatever the console shows,
/// so that a test that times out can say what the processor was doing instead of only "a task was canceled".
/// </summary>
public sealed class RecentLogs
{
    private const int Capacity = 200;

    private readonly ConcurrentQueue<string> _lines = new();

    /// <summary>Adds this provider to <paramref name="logging"/> at Information, independent of the console's levels.</summary>
    public void AddTo(ILoggingBuilder logging)
    {
        logging.AddProvider(new Provider(this));
        logging.AddFilter<Provider>(level => level >= LogLevel.Information);
    }

    public string Dump() => string.Join(Environment.NewLine, _lines);

    private void Add(string line)
    {
        _lines.Enqueue(line);
        while (_lines.Count > Capacity && _lines.TryDequeue(out _))
        {
        }
    }

    private sealed class Provider(RecentLogs owner) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(owner, categoryName);

        public void Dispose()
        {
        }
    }

    private sealed class Logger(RecentLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var time = DateTime.UtcNow.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture);
            var error = exception is null ? "" : $" [{exception.GetType().Name}: {exception.Message}]";
            owner.Add($"{time} {logLevel,-11} {category}: {formatter(state, exception)}{error}");
        }
    }
}
