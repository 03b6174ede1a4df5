using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// A bare HTTP/1.1 client over one socket, for what HttpClient hides: pipelining, exact framing after body
/// holes (a stray byte would corrupt the next response), and resetting a connection mid-body.
/// </summary>
public sealed class RawHttpClient : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly byte[] _buffer = new byte[1 << 20];
    private int _start, _end;

    public static async Task<RawHttpClient> ConnectAsync(Uri baseAddress)
    {
        var client = new RawHttpClient();
        await client._socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, baseAddress.Port));
        return client;
    }

    /// <summary>The socket itself, to watch for the server's close (Poll) without reading.</summary>
    public Socket Socket => _socket;

    public Task SendAsync(string text) => _socket.SendAsync(Encoding.ASCII.GetBytes(text), SocketFlags.None);

    public static string Get(string pathAndQuery, string method = "GET") => $"{method} {pathAndQuery} HTTP/1.1\r\nHost: test\r\n\r\n";

    /// <summary>The head of the last response <see cref="ReadResponseAsync"/> read (status line and fields, no blank line).</summary>
    public string LastHead { get; private set; } = "";

    /// <summary>Reads one response; the body is expected only when <paramref name="bodyExpected"/> (not for HEAD/204/304).</summary>
    public async Task<(int Status, long? ContentLength, long BodyLength, string Sha)> ReadResponseAsync(bool bodyExpected = true)
    {
        string head;
        try { head = LastHead = await ReadHeadAsync(); }
        catch (System.Net.Sockets.SocketException e) { throw new IOException("connection reset before the end of the body (in the head)", e); }
        var lines = head.Split("\r\n");
        int status = int.Parse(lines[0].Split(' ')[1]);
        long? contentLength = null;
        foreach (var line in lines.Skip(1))
            if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)) contentLength = long.Parse(line[15..].Trim());
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long left = bodyExpected ? contentLength ?? 0 : 0, read = 0;
        while (left > 0)
        {
            bool more;
            try { more = _start != _end || await FillAsync(); }
            catch (System.Net.Sockets.SocketException e) { throw new IOException($"connection reset {left} bytes before the end of the body", e); }
            if (!more) throw new IOException($"connection closed {left} bytes before the end of the body");
            int n = (int)Math.Min(left, _end - _start);
            hash.AppendData(_buffer, _start, n);
            _start += n;
            left -= n;
            read += n;
        }
        return (status, contentLength, read, Convert.ToHexString(hash.GetHashAndReset()));
    }

    /// <summary>Reads up to <paramref name="count"/> bytes past the current position (e.g. part of a body).</summary>
    public async Task<long> ReadSomeAsync(long count)
    {
        long read = 0;
        while (read < count)
        {
            if (_start == _end && !await FillAsync()) break;
            int n = (int)Math.Min(count - read, _end - _start);
            _start += n;
            read += n;
        }
        return read;
    }

    public async Task<string> ReadHeadAsync()
    {
        while (true)
        {
            int end = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                var head = Encoding.ASCII.GetString(_buffer, _start, end);
                _start += end + 4;
                return head;
            }
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (!await FillAsync()) throw new IOException("connection closed before a response head");
        }
    }

    /// <summary>True when the server closed the connection (read returns 0 or fails) rather than sending more.</summary>
    public async Task<bool> IsClosedByServerAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                int n = await _socket.ReceiveAsync(_buffer.AsMemory(), SocketFlags.None, cts.Token);
                if (n == 0) return true;
            }
        }
        catch (SocketException) { return true; }
        catch (OperationCanceledException) { return false; }
    }

    /// <summary>Closes with RST (SO_LINGER 0), like a client that crashed mid-download.</summary>
    public void Reset()
    {
        _socket.LingerState = new LingerOption(true, 0);
        _socket.Close();
    }

    private async Task<bool> FillAsync()
    {
        if (_start == _end) _start = _end = 0;
        if (_end == _buffer.Length)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        int n = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None);
        _end += n;
        return n > 0;
    }

    public void Dispose() => _socket.Dispose();
}
