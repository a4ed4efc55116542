using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Pipeline.Kafka.Embedded;

/// <summary>
/// Relays TCP connections from a fixed loopback port to a mock broker's random loopback port, so the broker is
/// reachable at a well-known address by other processes.
/// </summary>
internal sealed partial class LoopbackForwarder : IAsyncDisposable
{
    private const int BufferSize = 64 * 1024;

    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<long, (Socket Client, Socket Upstream, Task Pump)> _connections = new();
    private readonly Task _acceptLoop;
    private long _nextConnectionId;
    private int _disposed;

    private LoopbackForwarder(Socket listener, IPEndPoint target, ILogger logger)
    {
        _listener = listener;
        _target = target;
        _logger = logger;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public int ListenPort => ((IPEndPoint)_listener.LocalEndPoint!).Port;

    /// <summary>Binds 127.0.0.1:<paramref name="listenPort"/>; throws <see cref="SocketException"/> if it is taken.</summary>
    public static LoopbackForwarder Start(int listenPort, int targetPort, ILogger logger)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(new IPEndPoint(IPAddress.Loopback, listenPort));
            listener.Listen(128);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        return new LoopbackForwarder(listener, new IPEndPoint(IPAddress.Loopback, targetPort), logger);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync();
        _listener.Dispose();
        foreach (var connection in _connections.Values)
        {
            connection.Client.Dispose();
            connection.Upstream.Dispose();
        }

        var pending = _connections.Values.Select(connection => connection.Pump).Append(_acceptLoop).ToArray();
        try
        {
            await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException or TimeoutException)
        {
            // Why: shutdown races the pumps by design; whatever they were doing is being torn down anyway.
        }

        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                if (token.IsCancellationRequested)
                {
                    return;
                }

                LogAcceptFailed(ex, ListenPort);
                try
                {
                    // Why: errors such as running out of file descriptors persist; don't spin on them.
                    await Task.Delay(TimeSpan.FromMilliseconds(100), token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            var id = Interlocked.Increment(ref _nextConnectionId);
            var pump = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _connections[id] = (client, upstream, pump.Task);
            _ = RelayAsync(id, client, upstream, pump, token);
        }
    }

    private async Task RelayAsync(long id, Socket client, Socket upstream, TaskCompletionSource done, CancellationToken token)
    {
        try
        {
            // Why NoDelay: Kafka requests are small and latency-sensitive; Nagle would add delays per hop.
            client.NoDelay = true;
            upstream.NoDelay = true;
            try
            {
                await upstream.ConnectAsync(_target, token);
            }
            catch (SocketException ex)
            {
                // Expected while the broker is set down: the client sees a closed connection, as with a dead broker.
                LogUpstreamUnavailable(ListenPort, _target.Port, ex.SocketErrorCode);
                return;
            }

            await Task.WhenAll(PumpAsync(client, upstream, token), PumpAsync(upstream, client, token));
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Why: either side vanishing mid-transfer is a normal end of a relayed connection.
        }
        finally
        {
            client.Dispose();
            upstream.Dispose();
            _connections.TryRemove(id, out _);
            done.TrySetResult();
        }
    }

    private static async Task PumpAsync(Socket from, Socket to, CancellationToken token)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer.AsMemory(), SocketFlags.None, token);
                if (read == 0)
                {
                    // Why: propagate the close so the peer on the other side notices the same disconnect.
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                var sent = 0;
                while (sent < read)
                {
                    sent += await to.SendAsync(buffer.AsMemory(sent, read - sent), SocketFlags.None, token);
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Why: a reset on either side ends the relay; closing both unblocks the opposite pump.
            from.Dispose();
            to.Dispose();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded Kafka forwarder on port {ListenPort} failed to accept a connection")]
    private partial void LogAcceptFailed(Exception exception, int listenPort);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Embedded Kafka forwarder {ListenPort} -> {TargetPort}: broker not accepting connections ({Error})")]
    private partial void LogUpstreamUnavailable(int listenPort, int targetPort, SocketError error);
}
