using System.Collections.Concurrent;

namespace Pipeline.Processor;

/// <summary>
/// The logger factory handed to Streamiz. Streamiz keeps the first factory it is given in a process-wide static
/// and uses it for every topology built afterwards; if that were a host's own factory, any processor host started
/// after the first one was disposed (tests, an in-process restart) would fail with ObjectDisposedException. This
/// factory lives as long as the process and ignores Dispose. Each running processor <see cref="Attach"/>es its own
/// host's factory under its client id: a line that names a client id (Streamiz prefixes its thread and task lines
/// with "stream-thread[{clientId}-stream-thread-N]") goes to that processor's host only, any other line to every
/// attached host, so with several processors in one process no line is lost to the wrong host.
/// </summary>
public sealed class StreamizLogging : ILoggerFactory
{
    /// <summary>
    /// What Streamiz 1.8 logs (category StreamThread, level Warning) when a stream thread closes all its tasks as
    /// zombies and rejoins the group: after a fenced producer, an aborted transaction or an error it was told to
    /// continue after. Its tasks are closed dirty, but their local stores are kept: see <see cref="Attach"/>.
    /// </summary>
    private const string LostTasksMessage = "Detected that the thread";

    private static readonly Lock Gate = new();

    // Copy-on-write: read on every Streamiz log call (per record at Debug), written only when a processor starts or stops.
    private static volatile Attachment[] _attached = [];

    private StreamizLogging()
    {
    }

    public static StreamizLogging Instance { get; } = new();

    /// <summary>
    /// Routes the Streamiz lines of the client <paramref name="clientId"/>, and those that name no client, to
    /// <paramref name="factory"/> until the result is disposed.
    /// </summary>
    /// <param name="onLostTasks">
    /// Called when a stream thread of this client closes its tasks dirty. Streamiz then aborts the transaction but
    /// keeps the tasks' RocksDB stores, which hold the aborted transaction's writes, and reopens them from there;
    /// under exactly-once that silently turns re-processed input into "already applied". Kafka Streams wipes such
    /// stores; the processor restarts instead, and <see cref="ExactlyOnceStateGuard"/> rebuilds them from the
    /// changelogs.
    /// </param>
    public static IDisposable Attach(string clientId, ILoggerFactory factory, Action? onLostTasks = null)
    {
        var attachment = new Attachment(clientId, factory, onLostTasks);
        lock (Gate)
        {
            _attached = [.. _attached.Where(a => a.ClientId != clientId), attachment];
        }

        return attachment;
    }

    public ILogger CreateLogger(string categoryName) => new RoutingLogger(categoryName);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Attachment(string clientId, ILoggerFactory factory, Action? onLostTasks) : IDisposable
    {
        private readonly ConcurrentDictionary<string, ILogger> _loggers = new();

        public string ClientId { get; } = clientId;

        public Action? OnLostTasks { get; } = onLostTasks;

        public ILogger For(string categoryName) =>
            _loggers.TryGetValue(categoryName, out var logger) ? logger : _loggers.GetOrAdd(categoryName, factory.CreateLogger(categoryName));

        public void Dispose()
        {
            lock (Gate)
            {
                _attached = [.. _attached.Where(a => a != this)];
            }
        }
    }

    private sealed class RoutingLogger(string categoryName) : ILogger
    {
        private readonly bool _streamThread = categoryName.EndsWith(".StreamThread", StringComparison.Ordinal);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel)
        {
            foreach (var attachment in _attached)
            {
                if (attachment.For(categoryName).IsEnabled(logLevel))
                {
                    return true;
                }
            }

            return false;
        }

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            // Streamiz logs per record at Debug: a disabled level costs a look at each host, no allocation, no formatting.
            var mustInspect = _streamThread && logLevel >= LogLevel.Warning;
            if (!mustInspect && !IsEnabled(logLevel))
            {
                return;
            }

            var hosts = _attached;
            string? message = hosts.Length > 1 || mustInspect ? formatter(state, exception) : null;
            var owner = message is null ? null : hosts.FirstOrDefault(h => message.Contains(h.ClientId, StringComparison.Ordinal));
            if (owner is not null && mustInspect && message!.Contains(LostTasksMessage, StringComparison.Ordinal))
            {
                owner.OnLostTasks?.Invoke();
            }

            foreach (var host in owner is null ? hosts : [owner])
            {
                try
                {
                    host.For(categoryName).Log(logLevel, eventId, state, exception, formatter);
                }
                catch (ObjectDisposedException)
                {
                    // The host is shutting down and its factory is gone before it detached; the line is dropped for it.
                }
            }
        }
    }
}
