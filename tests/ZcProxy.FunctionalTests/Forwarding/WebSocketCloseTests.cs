using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Transport;
using ZcProxy.Hosting.Systemd;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// The end of a WebSocket on Kestrel's socket transport (ZeroCopy off: YARP's copying upgrade path, under
/// <see cref="SocketLingeringClose"/>): the close frames reach the client, the TCP connection then ends with a FIN (a
/// reset would make the client's kernel drop what it had not read yet), and the proxy's connection is gone once the
/// client closed its socket, without waiting out a lingering bound. The client is a WebSocket over a stream that
/// records how the proxy's side of the TCP connection ended.
/// </summary>
public sealed class WebSocketCloseTests
{
    private static Task<TestOrigin> StartOriginAsync() => TestOrigin.StartAsync("ws", app =>
    {
        app.UseWebSockets();
        app.Map("/echo", async (HttpContext context) =>
        {
            using var ws = await context.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[64 * 1024];
            while (true)
            {
                var r = await ws.ReceiveAsync(buffer, CancellationToken.None);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    await ws.CloseOutputAsync(r.CloseStatus ?? WebSocketCloseStatus.NormalClosure, r.CloseStatusDescription, CancellationToken.None);
                    return;
                }
                await ws.SendAsync(buffer.AsMemory(0, r.Count), r.MessageType, r.EndOfMessage, CancellationToken.None);
            }
        });
        // After the client's first message: its close frame, and the connection ends (no wait for the client's answer).
        app.Map("/close-now", async (HttpContext context) =>
        {
            using var ws = await context.WebSockets.AcceptWebSocketAsync();
            await ws.ReceiveAsync(new byte[64], CancellationToken.None);
            await ws.CloseOutputAsync(WebSocketCloseStatus.EndpointUnavailable, "going", CancellationToken.None);
        });
    });

    private static async Task<(Socket Socket, EndObservingStream Stream, WebSocket WebSocket)> ConnectAsync(ForwarderTestBed bed, string path)
    {
        var (socket, _) = await bed.ConnectRawAsync();
        var stream = new EndObservingStream(new NetworkStream(socket, ownsSocket: false));
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
        var head = new List<byte>();
        var one = new byte[1];
        using var bounded = new CancellationTokenSource(Poll.DefaultTimeout);
        while (head.Count < 4 || !head.TakeLast(4).SequenceEqual("\r\n\r\n"u8.ToArray()))
        {
            Assert.Equal(1, await stream.ReadAsync(one, bounded.Token));
            head.Add(one[0]);
        }
        Assert.StartsWith("HTTP/1.1 101 ", Encoding.ASCII.GetString([.. head]), StringComparison.Ordinal);
        var ws = WebSocket.CreateFromStream(stream, new WebSocketCreationOptions { IsServer = false, KeepAliveInterval = TimeSpan.Zero });
        return (socket, stream, ws);
    }

    /// <summary>The client closed its socket: the proxy's connection ends, by itself or by a lingering the client's close ended.</summary>
    private static async Task AssertProxyConnectionEndedAsync(ForwarderTestBed bed)
    {
        var connections = bed.Proxy.Get<ActiveConnections>();
        await Poll.UntilAsync(() => connections.Count == 0, "the proxy's client connection to end");
        var counts = bed.Proxy.Get<LingeringCounts>();
        Assert.Equal((0L, 0L, 0L), (counts.Get(LingeringEnd.Timeout), counts.Get(LingeringEnd.Time), counts.Get(LingeringEnd.Aborted)));
    }

    [Fact]
    public async Task ClientCloses_TheCloseFramesComeBack_ThenAFin()
    {
        await using var origin = await StartOriginAsync();
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url, zeroCopy: "\"Enabled\": false");
        var (socket, stream, ws) = await ConnectAsync(bed, "/echo");
        using (socket)
        using (ws)
        {
            var buffer = new byte[64];
            for (int i = 0; i < 3; i++)
            {
                await ws.SendAsync(Encoding.ASCII.GetBytes($"m{i}"), WebSocketMessageType.Text, true, CancellationToken.None);
                var r = await ws.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
                Assert.Equal($"m{i}", Encoding.ASCII.GetString(buffer, 0, r.Count));
            }
            using var bounded = new CancellationTokenSource(Poll.DefaultTimeout);
            await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", bounded.Token);
            Assert.Equal((WebSocketCloseStatus.NormalClosure, "bye"), (ws.CloseStatus, ws.CloseStatusDescription));
            Assert.Equal("fin", await stream.EndAsync());
        }
        await AssertProxyConnectionEndedAsync(bed);
    }

    /// <summary>
    /// The origin ends the WebSocket while the client is still sending (its bytes arrive at the proxy during and after
    /// the end, unread): the client, reading only once it sent everything, still finds the close frame, then a FIN.
    /// </summary>
    [Fact]
    public async Task ServerCloses_WhileTheClientIsStillSending_TheCloseFrameArrives_ThenAFin()
    {
        await using var origin = await StartOriginAsync();
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url, zeroCopy: "\"Enabled\": false");
        var (socket, stream, ws) = await ConnectAsync(bed, "/close-now");
        using (socket)
        using (ws)
        {
            using var bounded = new CancellationTokenSource(Poll.DefaultTimeout);
            // Not reading meanwhile: a paced stream of messages, most of them sent after the proxy ended the connection.
            var message = new byte[1024];
            for (int i = 0; i < 50; i++)
            {
                await ws.SendAsync(message, WebSocketMessageType.Binary, true, bounded.Token);
                await Task.Delay(20, bounded.Token);
            }
            var r = await ws.ReceiveAsync(new byte[64].AsMemory(), bounded.Token);
            Assert.Equal(WebSocketMessageType.Close, r.MessageType);
            Assert.Equal((WebSocketCloseStatus.EndpointUnavailable, "going"), (ws.CloseStatus, ws.CloseStatusDescription));
            Assert.Equal("fin", await stream.EndAsync());
        }
        await AssertProxyConnectionEndedAsync(bed);
    }

    /// <summary>A stream that remembers how the peer ended it: "fin" (a read returned 0) or "reset" (a read failed).</summary>
    private sealed class EndObservingStream(NetworkStream inner) : Stream
    {
        private string? _end;

        /// <summary>How the peer ended the connection; reads (and drops) until it did, bounded.</summary>
        public async Task<string> EndAsync()
        {
            var buffer = new byte[16 * 1024];
            using var bounded = new CancellationTokenSource(Poll.DefaultTimeout);
            while (_end is null)
            {
                try { _ = await ReadAsync(buffer, bounded.Token); } // dropped
                catch (IOException) { } // recorded
            }
            return _end;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_end is not null) return 0;
            try
            {
                int n = await inner.ReadAsync(buffer, cancellationToken);
                if (n == 0) _end = "fin";
                return n;
            }
            catch (IOException e) when (e.InnerException is SocketException)
            {
                _end = "reset";
                throw;
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public override void Flush() { }
        public override bool CanRead => true;
        public override bool CanWrite => true;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
