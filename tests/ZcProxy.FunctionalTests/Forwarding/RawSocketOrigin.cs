using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ZcProxy.Tests.Forwarding;

/// <summary>A request as a raw origin received it.</summary>
public sealed record RawRequest(string Method, string Target, IReadOnlyDictionary<string, string> Headers, byte[] Body, int ConnectionId, int RequestOnConnection);

/// <summary>
/// An HTTP/1.1 origin on raw sockets, for what Kestrel will not do: malformed heads, resets mid-body, silence,
/// closing kept-alive connections. The handler writes the whole response itself and returns whether to keep the
/// connection open. Counts connections, so tests can see upstream keep-alive.
/// </summary>
public sealed class RawSocketOrigin : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly Func<RawRequest, Socket, Task<bool>> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _open = [];
    private int _connections, _closed;

    private RawSocketOrigin(Func<RawRequest, Socket, Task<bool>> handler)
    {
        _handler = handler;
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(64);
        _ = AcceptLoopAsync();
    }

    public static RawSocketOrigin Start(Func<RawRequest, Socket, Task<bool>> handler) => new(handler);

    public string Url => $"http://{_listener.LocalEndPoint}/";
    public int Connections => Volatile.Read(ref _connections);
    /// <summary>Connections that ended (either side closed).</summary>
    public int ClosedConnections => Volatile.Read(ref _closed);

    public static Task SendAsync(Socket socket, string text) => socket.SendAsync(Encoding.Latin1.GetBytes(text).AsMemory()).AsTask();

    /// <summary>Sends an RST instead of a FIN.</summary>
    public static void Reset(Socket socket)
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try { socket = await _listener.AcceptAsync(_stop.Token); }
            catch { return; }
            int id = Interlocked.Increment(ref _connections);
            lock (_open) _open.Add(socket);
            _ = ServeAsync(socket, id);
        }
    }

    private async Task ServeAsync(Socket socket, int id)
    {
        try
        {
            var reader = new RawReader(socket);
            for (int n = 1; ; n++)
            {
                var request = await reader.ReadRequestAsync(id, n, _stop.Token);
                if (request is null || !await _handler(request, socket)) break;
            }
        }
        catch { /* the peer went away, or the handler reset the connection */ }
        finally
        {
            Interlocked.Increment(ref _closed);
            try { socket.Dispose(); } catch { }
        }
    }

    public ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        lock (_open) foreach (var s in _open) try { s.Dispose(); } catch { }
        return ValueTask.CompletedTask;
    }
}

/// <summary>Minimal buffered HTTP/1.1 message reader over a socket, for test origins and test clients.</summary>
public sealed class RawReader(Socket socket)
{
    private byte[] _buffer = new byte[64 * 1024];
    private int _start, _end;

    public async Task<RawRequest?> ReadRequestAsync(int connectionId, int n, CancellationToken cancellationToken)
    {
        var head = await ReadHeadAsync(cancellationToken);
        if (head is null) return null;
        var lines = head.Split("\r\n");
        var parts = lines[0].Split(' ');
        var headers = ParseHeaders(lines);
        byte[] body = [];
        if (headers.TryGetValue("Content-Length", out var cl)) body = await ReadExactlyAsync(long.Parse(cl), cancellationToken);
        else if (headers.TryGetValue("Transfer-Encoding", out var te) && te.Contains("chunked")) body = await ReadChunkedAsync(cancellationToken);
        return new RawRequest(parts[0], parts[1], headers, body, connectionId, n);
    }

    /// <summary>Reads one response: (status, headers, body). A HEAD's must be told via <paramref name="noBody"/> (1xx, 204, 304 have none).</summary>
    public async Task<(int Status, Dictionary<string, string> Headers, byte[] Body)> ReadResponseAsync(bool noBody = false, CancellationToken cancellationToken = default)
    {
        var head = await ReadHeadAsync(cancellationToken) ?? throw new EndOfStreamException("connection closed before a response");
        var lines = head.Split("\r\n");
        int status = int.Parse(lines[0].Split(' ')[1]);
        var headers = ParseHeaders(lines);
        if (noBody || status is < 200 or 204 or 304) return (status, headers, []);
        if (headers.TryGetValue("Content-Length", out var cl)) return (status, headers, await ReadExactlyAsync(long.Parse(cl), cancellationToken));
        if (headers.TryGetValue("Transfer-Encoding", out var te) && te.Contains("chunked")) return (status, headers, await ReadChunkedAsync(cancellationToken));
        var rest = new MemoryStream(); // ended by the close; its first bytes may have come with the head
        do { rest.Write(_buffer, _start, _end - _start); _start = _end; } while (await FillAsync(cancellationToken));
        return (status, headers, rest.ToArray());
    }

    /// <summary>
    /// True when the peer closed (FIN or reset) without sending anything more within <paramref name="timeout"/>; false
    /// when bytes arrive (they stay buffered for the next read) or nothing happens.
    /// </summary>
    public async Task<bool> PeerClosedAsync(TimeSpan timeout)
    {
        if (_end > _start) return false;
        using var cts = new CancellationTokenSource(timeout);
        try { return !await FillAsync(cts.Token); }
        catch (OperationCanceledException) { return false; }
        catch (SocketException) { return true; }
    }

    private static Dictionary<string, string> ParseHeaders(string[] lines)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            int colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var name = line[..colon];
            var value = line[(colon + 1)..].Trim();
            headers[name] = headers.TryGetValue(name, out var prior) ? prior + ", " + value : value;
        }
        return headers;
    }

    private async Task<string?> ReadHeadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            int end = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                var head = Encoding.Latin1.GetString(_buffer, _start, end);
                _start += end + 4;
                return head;
            }
            if (!await FillAsync(cancellationToken)) return null;
        }
    }

    public async Task<byte[]> ReadExactlyAsync(long length, CancellationToken cancellationToken)
    {
        var result = new byte[length];
        long done = 0;
        while (done < length)
        {
            if (_end == _start && !await FillAsync(cancellationToken)) throw new EndOfStreamException($"closed after {done} of {length} body bytes");
            int n = (int)Math.Min(length - done, _end - _start);
            Buffer.BlockCopy(_buffer, _start, result, (int)done, n);
            _start += n;
            done += n;
        }
        return result;
    }

    private async Task<byte[]> ReadChunkedAsync(CancellationToken cancellationToken)
    {
        var body = new MemoryStream();
        while (true)
        {
            var line = await ReadLineAsync(cancellationToken);
            int size = Convert.ToInt32(line.Split(';')[0].Trim(), 16);
            if (size == 0)
            {
                while ((await ReadLineAsync(cancellationToken)).Length > 0) { }
                return body.ToArray();
            }
            body.Write(await ReadExactlyAsync(size, cancellationToken));
            await ReadLineAsync(cancellationToken);
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            int lf = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n"u8);
            if (lf >= 0)
            {
                var line = Encoding.Latin1.GetString(_buffer, _start, lf);
                _start += lf + 2;
                return line;
            }
            if (!await FillAsync(cancellationToken)) throw new EndOfStreamException("closed inside a chunked body");
        }
    }

    private async Task<bool> FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2);
        int n = await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
        _end += n;
        return n > 0;
    }
}
