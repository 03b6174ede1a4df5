using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace ZcProxy.Tests.StreamProxy;

/// <summary>
/// A raw TCP server on 127.0.0.1 (port 0 unless given) running <paramref name="handler"/> for each connection, and
/// keeping what handlers report. Stopped (listener and open connections closed) on dispose.
/// </summary>
public sealed class TcpOrigin : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly Func<Socket, TcpOrigin, Task> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<Socket, byte> _open = new();
    private readonly ConcurrentBag<Task> _handlers = [];
    private readonly Task _accepting;
    private int _accepted;

    private TcpOrigin(Socket listener, Func<Socket, TcpOrigin, Task> handler)
    {
        _listener = listener;
        _handler = handler;
        _accepting = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;
    public string Address => $"tcp://127.0.0.1:{Port}";
    public int Accepted => Volatile.Read(ref _accepted);
    /// <summary>Whatever handlers report (shas, headers, byte counts).</summary>
    public ConcurrentQueue<string> Reports { get; } = new();
    public CancellationToken Stopping => _stop.Token;

    public static TcpOrigin Start(Func<Socket, TcpOrigin, Task> handler, int port = 0)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        listener.Listen(512);
        return new TcpOrigin(listener, handler);
    }

    /// <summary>Echoes every byte until the client's FIN, then finishes its side too.</summary>
    public static TcpOrigin Echo(int port = 0) => Start(async (socket, origin) =>
    {
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, origin.Stopping)) > 0) await SendAllAsync(socket, buffer.AsMemory(0, n), origin.Stopping);
        socket.Shutdown(SocketShutdown.Send);
    }, port);

    public static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        while (!data.IsEmpty) data = data[await socket.SendAsync(data, SocketFlags.None, cancellationToken)..];
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes (fewer only at the peer's FIN).</summary>
    public static async Task<byte[]> ReceiveExactlyAsync(Socket socket, int count, CancellationToken cancellationToken = default)
    {
        var buffer = new byte[count];
        int got = 0;
        while (got < count)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, cancellationToken);
            if (n == 0) return buffer[..got];
            got += n;
        }
        return buffer;
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try { socket = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { return; }
            Interlocked.Increment(ref _accepted);
            _open.TryAdd(socket, 0);
            _handlers.Add(RunAsync(socket));
        }
    }

    private async Task RunAsync(Socket socket)
    {
        try { await _handler(socket, this); }
        catch (Exception e) when (e is SocketException or OperationCanceledException or IOException or ObjectDisposedException) { Reports.Enqueue("failed: " + e.Message); }
        finally
        {
            socket.Dispose();
            _open.TryRemove(socket, out _);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync();
        _listener.Dispose();
        foreach (var socket in _open.Keys) socket.Dispose();
        await _accepting;
        await Task.WhenAll(_handlers);
    }
}
