using System.Net.Security;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Transport;
using ZcProxy.Tests.Forwarding;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// Lingering close (nginx's lingering_close): a connection the proxy ends while its client is still sending a request
/// body is shut down for writing after the response and read (the bytes dropped) until the client closes, goes quiet
/// for LingeringTimeout, or LingeringTime passes. Closed at once instead, the unread bytes make the kernel reset the
/// connection, and the reset makes the client's kernel drop the response it had not read yet.
/// </summary>
[Collection(FdCountCollection.Name)] // byte-heavy: run apart from the timing-sensitive parallel tests
public sealed class LingeringCloseTests
{
    private const long BodyLimit = 1 << 20;

    private static async Task<(ConfigDirectory Dir, InProcessProxy Proxy, TestOrigin Origin)> StartAsync(string http1, string limits = "")
    {
        var origin = await TestOrigin.StartAsync("o", app => app.MapPost("/upload", (HttpContext _) => Results.Text("not expected")));
        var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "{{origin.Url}}" } } } } }
            """, $$"""
            "AccessLog": { "Path": "off" },
            "Limits": { "MaxRequestBodySize": {{BodyLimit}} {{limits}} },
            "ZeroCopy": { "Enabled": true, "Http1": "{{http1}}" }
            """);
        return (dir, await InProcessProxy.StartAsync(dir.MainFile), origin);
    }

    private static async Task<(Socket Socket, RawReader Reader)> ConnectAsync(InProcessProxy proxy)
    {
        var uri = new Uri(proxy.Url);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        return (socket, new RawReader(socket));
    }

    private static ReadOnlyMemory<byte> Head(long length) => System.Text.Encoding.ASCII.GetBytes($"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");

    /// <summary>
    /// The client sends its whole 16 MiB body (far more than the socket buffers between it and the proxy hold) to a
    /// route whose limit is 1 MiB, and only then reads: the 413 the proxy answered from the head is there, whole, then
    /// the FIN. Without lingering the send or the read fails with a reset and the 413 is lost.
    /// </summary>
    [Theory]
    [InlineData("own")]
    [InlineData("kestrel")]
    public async Task AnUploadOverTheLimit_SentWholeBeforeReading_StillGetsThe413(string http1)
    {
        const long Length = 16 << 20;
        var (dir, proxy, origin) = await StartAsync(http1);
        using var _ = dir;
        await using var __ = proxy;
        await using var ___ = origin;
        var (socket, reader) = await ConnectAsync(proxy);
        using (socket)
        {
            await socket.SendAsync(Head(Length));
            foreach (var piece in BodyPattern.Pieces(Length)) await socket.SendAsync(piece);

            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(413, response.Status);
            Assert.Equal("close", response.Headers["Connection"]);
            Assert.True(await reader.PeerClosedAsync(TimeSpan.FromSeconds(30)), "the proxy did not close after the 413");
        }
        Assert.Equal(0, origin.Requests);
        var counts = proxy.Get<ZeroCopyTransport>().LingeringCounts;
        await Poll.UntilAsync(() => counts.Get(LingeringEnd.ClientClosed) == 1, "the lingering close ended by the client's close");
    }

    /// <summary>
    /// The 413 can be answered and the connection closed before any body byte arrived (nothing unread then): the close
    /// still lingers, so the body the client sends after it is dropped, not answered with a reset. On Kestrel's HTTP/1.1
    /// layer the transport learnt this only from unread bytes, and a loaded machine let the 413 and the close overtake the
    /// client's first body bytes (a Broken pipe in the test above).
    /// </summary>
    [Theory]
    [InlineData("own")]
    [InlineData("kestrel")]
    public async Task A413AnsweredBeforeAnyBodyByte_StillLingers(string http1)
    {
        var (dir, proxy, origin) = await StartAsync(http1);
        using var _ = dir;
        await using var __ = proxy;
        await using var ___ = origin;
        var counts = proxy.Get<ZeroCopyTransport>().LingeringCounts;
        var (socket, reader) = await ConnectAsync(proxy);
        using (socket)
        {
            await socket.SendAsync(Head(16 << 20)); // the head alone
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(413, response.Status);
            Assert.True(await reader.PeerClosedAsync(TimeSpan.FromSeconds(30)), "the proxy did not close after the 413");
            try
            {
                foreach (var piece in BodyPattern.Pieces(1 << 20)) await socket.SendAsync(piece);
            }
            catch (SocketException) { } // without lingering: the closed socket resets; the counter below says so
            socket.Shutdown(SocketShutdown.Send);
        }
        await Poll.UntilAsync(() => counts.Get(LingeringEnd.ClientClosed) == 1, "the close lingered until the client closed");
    }

    /// <summary>A client that stops sending mid-body and never closes is closed after LingeringTimeout (configured short here).</summary>
    [Fact]
    public async Task AClientThatGoesQuietAndNeverCloses_IsClosedAfterTheLingeringTimeout()
    {
        var (dir, proxy, origin) = await StartAsync("own", """, "LingeringTimeout": "200ms" """);
        using var _ = dir;
        await using var __ = proxy;
        await using var ___ = origin;
        var transport = proxy.Get<ZeroCopyTransport>();
        var (socket, reader) = await ConnectAsync(proxy);
        using (socket)
        {
            await socket.SendAsync(Head(16 << 20));
            foreach (var piece in BodyPattern.Pieces(200_000)) await socket.SendAsync(piece);
            // ... and then nothing more, and no close.
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(413, response.Status);
            Assert.True(await reader.PeerClosedAsync(TimeSpan.FromSeconds(30)), "the response must be followed by a FIN (the write side shut down)");
            await Poll.UntilAsync(() => transport.OpenConnections == 0, "the lingering connection closed by its timeout");
        }
        Assert.Equal(1, transport.LingeringCounts.Get(LingeringEnd.Timeout));
        Assert.Equal(0, transport.LingeringCounts.Get(LingeringEnd.ClientClosed));
    }

    /// <summary>A client that keeps sending (never quiet for LingeringTimeout) is closed once LingeringTime passed.</summary>
    [Fact]
    public async Task AClientThatKeepsSending_IsClosedAfterTheLingeringTime()
    {
        var (dir, proxy, origin) = await StartAsync("own", """, "LingeringTime": "300ms", "LingeringTimeout": "30s" """);
        using var _ = dir;
        await using var __ = proxy;
        await using var ___ = origin;
        var transport = proxy.Get<ZeroCopyTransport>();
        var (socket, reader) = await ConnectAsync(proxy);
        using (socket)
        {
            await socket.SendAsync(Head(1L << 40));
            var chunk = new byte[4096];
            // A trickle, each piece well within the lingering timeout, until the proxy resets the connection (it closed).
            var sending = Task.Run(async () =>
            {
                using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                try
                {
                    while (!stop.IsCancellationRequested)
                    {
                        await socket.SendAsync(chunk.AsMemory(), stop.Token);
                        await Task.Delay(20, stop.Token);
                    }
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException) { }
            });
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(413, response.Status);
            await Poll.UntilAsync(() => transport.OpenConnections == 0, "the lingering connection closed by the lingering time");
            socket.Shutdown(SocketShutdown.Both);
            await sending.WaitAsync(TimeSpan.FromSeconds(30));
        }
        Assert.Equal(1, transport.LingeringCounts.Get(LingeringEnd.Time));
    }
    /// <summary>
    /// A proxy whose client connections are Kestrel's socket transport's: a TLS listener, or plaintext with
    /// <c>ZeroCopy.Enabled: false</c>.
    /// </summary>
    private static async Task<(ConfigDirectory Dir, InProcessProxy Proxy, TestOrigin Origin)> StartOnSocketsAsync(bool tls, string limits = "")
    {
        var origin = await TestOrigin.StartAsync("o", app => app.MapPost("/upload", (HttpContext _) => Results.Text("not expected")));
        var dir = new ConfigDirectory();
        if (tls)
        {
            using var certificate = TestCertificates.SelfSigned("localhost");
            TestCertificates.WritePem(certificate, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem"));
        }
        var listen = tls ? """{ "Url": "https://127.0.0.1:0", "Certificate": "cert.pem", "CertificateKey": "key.pem" }""" : """{ "Url": "http://127.0.0.1:0" }""";
        dir.WriteAtomically(dir.MainFile, $$"""
            { "Listen": [ {{listen}} ],
              "AccessLog": { "Path": "off" },
              "Limits": { "MaxRequestBodySize": {{BodyLimit}} {{limits}} },
              "ZeroCopy": { "Enabled": {{(tls ? "true" : "false")}} },
              "ReverseProxy": { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
                                "Clusters": { {{ConfigDirectory.Cluster("c", ("d", origin.Url))}} } } }
            """);
        return (dir, await InProcessProxy.StartAsync(dir.MainFile), origin);
    }

    /// <summary>The client's byte stream: the socket's, or TLS (HTTP/1.1 by ALPN) over it.</summary>
    private static async Task<Stream> OpenStreamAsync(InProcessProxy proxy, bool tls)
    {
        var uri = new Uri(proxy.Url);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        var stream = new NetworkStream(socket, ownsSocket: true);
        if (!tls) return stream;
        var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        });
        return ssl;
    }

    /// <summary>Everything the proxy sends until it closes (a FIN: a reset throws).</summary>
    private static async Task<string> ReadUntilClosedAsync(Stream stream)
    {
        var all = new MemoryStream();
        await stream.CopyToAsync(all).WaitAsync(TimeSpan.FromSeconds(30));
        return System.Text.Encoding.ASCII.GetString(all.ToArray());
    }

    /// <summary>
    /// Kestrel's socket transport lingers too: the client sends its whole 16 MiB body to the 1 MiB route and only then
    /// reads, and finds the 413 followed by a FIN. Without it, Kestrel closed at once: the send failed with a broken
    /// pipe or the read with a reset, and the 413 was lost.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OnKestrelsSocketTransport_AnUploadOverTheLimit_SentWholeBeforeReading_StillGetsThe413(bool tls)
    {
        const long Length = 16 << 20;
        var (dir, proxy, origin) = await StartOnSocketsAsync(tls);
        using var _ = dir;
        await using var __ = proxy;
        await using var ___ = origin;
        var counts = proxy.Get<LingeringCounts>();
        await using (var stream = await OpenStreamAsync(proxy, tls))
        {
            await stream.WriteAsync(Head(Length));
            foreach (var piece in BodyPattern.Pieces(Length)) await stream.WriteAsync(piece);
            await stream.FlushAsync();

            var response = await ReadUntilClosedAsync(stream);
            Assert.StartsWith("HTTP/1.1 413 ", response, StringComparison.Ordinal);
            Assert.Contains("\r\nConnection: close\r\n", response, StringComparison.OrdinalIgnoreCase);
        }
        Assert.Equal(0, origin.Requests);
        await Poll.UntilAsync(() => counts.Get(LingeringEnd.ClientClosed) == 1, "the lingering close ended by the client's close");
    }

    /// <summary>
    /// With <c>LingeringClose: "off"</c> Kestrel's socket transport closes at once, as it always did: the body the client
    /// sends after the 413 and the FIN is answered with a reset, and no lingering close is counted. (Fails if the socket
    /// transport's lingering ignored the setting.)
    /// </summary>
    [Fact]
    public async Task OnKestrelsSocketTransport_LingeringOff_ClosesAtOnce()
    {
        var (dir, proxy, origin) = await StartOnSocketsAsync(tls: false, """, "LingeringClose": "off" """);
        using var _ = dir;
        await using var __ = proxy;
        await using var ___ = origin;
        var counts = proxy.Get<LingeringCounts>();
        var (socket, reader) = await ConnectAsync(proxy);
        using (socket)
        {
            await socket.SendAsync(Head(16 << 20)); // the head alone
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(413, response.Status);
            Assert.True(await reader.PeerClosedAsync(TimeSpan.FromSeconds(30)), "the proxy did not close after the 413");
            var reset = await Assert.ThrowsAsync<SocketException>(async () =>
            {
                foreach (var piece in BodyPattern.Pieces(16 << 20)) await socket.SendAsync(piece);
            });
            Assert.True(reset.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted, reset.Message);
        }
        foreach (var ended in Enum.GetValues<LingeringEnd>()) Assert.Equal(0, counts.Get(ended));
    }

    /// <summary>Writes one byte until a write fails: the proxy closed the socket (the first write after it draws a reset).</summary>
    private static async Task<bool> WriteFailsAsync(Stream stream)
    {
        try
        {
            await stream.WriteAsync(new byte[1]);
            await stream.FlushAsync();
            return false;
        }
        catch (IOException) { return true; }
    }

    /// <summary>
    /// Kestrel's socket transport: a client that sends part of its body and then nothing, and never closes, gets the 413
    /// and a FIN, and is closed once it sent nothing for LingeringTimeout: counted as "timeout", not earlier than that
    /// after its last byte (fails if the quiet bound never fires, the lingering then runs to LingeringTime, or fires early).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OnKestrelsSocketTransport_AClientThatGoesQuietAndNeverCloses_IsClosedAfterTheLingeringTimeout(bool tls)
    {
        var quiet = TimeSpan.FromSeconds(1);
        var (dir, proxy, origin) = await StartOnSocketsAsync(tls, """, "LingeringTimeout": "1s", "LingeringTime": "60s" """);
        using var _ = dir;
        await using var __ = proxy;
        await using var ___ = origin;
        var counts = proxy.Get<LingeringCounts>();
        await using (var stream = await OpenStreamAsync(proxy, tls))
        {
            await stream.WriteAsync(Head(16 << 20));
            // Timed from the start of the last write, not its end: the proxy may read (and stamp) the last byte before this
            // thread returns from the write, and the quiet bound then ends before a stopwatch started afterwards says so.
            var sinceLastByte = new System.Diagnostics.Stopwatch();
            foreach (var piece in BodyPattern.Pieces(200_000))
            {
                sinceLastByte.Restart();
                await stream.WriteAsync(piece);
            }
            await stream.FlushAsync();
            // ... and then nothing more, and no close.
            var response = await ReadUntilClosedAsync(stream); // the 413, then a FIN (a reset throws)
            Assert.StartsWith("HTTP/1.1 413 ", response, StringComparison.Ordinal);

            await Poll.UntilAsync(() => counts.Get(LingeringEnd.Timeout) == 1, "the lingering close to end by its timeout");
            Assert.True(sinceLastByte.Elapsed >= quiet, $"ended {sinceLastByte.Elapsed} after the client's last byte, before LingeringTimeout");
            await Poll.UntilAsync(() => WriteFailsAsync(stream), "the proxy to have closed the connection");
        }
        Assert.Equal(0, counts.Get(LingeringEnd.ClientClosed) + counts.Get(LingeringEnd.Time) + counts.Get(LingeringEnd.Aborted));
    }

    /// <summary>
    /// Kestrel's socket transport: a client that keeps trickling bytes (never quiet for LingeringTimeout) gets the 413 and
    /// a FIN, and is closed once LingeringTime passed: counted as "time", not earlier than that after its request head;
    /// its next writes fail (fails if the whole-linger bound never fires: the trickle would be dropped forever).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OnKestrelsSocketTransport_AClientThatKeepsSending_IsClosedAfterTheLingeringTime(bool tls)
    {
        var whole = TimeSpan.FromSeconds(1);
        var (dir, proxy, origin) = await StartOnSocketsAsync(tls, """, "LingeringTime": "1s", "LingeringTimeout": "30s" """);
        using var _ = dir;
        await using var __ = proxy;
        await using var ___ = origin;
        var counts = proxy.Get<LingeringCounts>();
        await using (var stream = await OpenStreamAsync(proxy, tls))
        {
            var sinceHead = System.Diagnostics.Stopwatch.StartNew(); // the lingering starts after the proxy read the head
            await stream.WriteAsync(Head(1L << 40));
            await stream.FlushAsync();
            // A trickle, each piece well within the lingering timeout, until a write fails (the proxy closed).
            var sending = Task.Run(async () =>
            {
                var chunk = new byte[512];
                using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                try
                {
                    while (true)
                    {
                        await stream.WriteAsync(chunk, stop.Token);
                        await stream.FlushAsync(stop.Token);
                        await Task.Delay(20, stop.Token);
                    }
                }
                catch (IOException) { return true; }
                catch (OperationCanceledException) { return false; }
            });
            var response = await ReadUntilClosedAsync(stream); // the 413, then a FIN
            Assert.StartsWith("HTTP/1.1 413 ", response, StringComparison.Ordinal);

            await Poll.UntilAsync(() => counts.Get(LingeringEnd.Time) == 1, "the lingering close to end by the lingering time");
            Assert.True(sinceHead.Elapsed >= whole, $"ended {sinceHead.Elapsed} after the request head, before LingeringTime");
            Assert.True(await sending.WaitAsync(TimeSpan.FromSeconds(90)), "the trickle's writes never failed: the proxy did not close");
        }
        Assert.Equal(0, counts.Get(LingeringEnd.ClientClosed) + counts.Get(LingeringEnd.Timeout) + counts.Get(LingeringEnd.Aborted));
    }
}
