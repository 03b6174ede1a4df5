using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Relay;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.StreamProxy;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// Upgraded connections through the proxy: a Kestrel WebSocket origin, System.Net.WebSockets.ClientWebSocket as the
/// client. On the zero-copy path the tunnel after the 101 is spliced both ways; YARP's path (ZeroCopy off) copies.
/// </summary>
public sealed class WebSocketTests
{
    private const int Messages = 10_000;

    private const int Largest = (3 << 19) + 1;

    /// <summary>
    /// Message i's length: mostly small (1..4096 bytes), every 1000th 100,000 bytes (a 64-bit frame length), every
    /// 2500th 1.5 MiB + 1 (more than a splice pipe holds).
    /// </summary>
    private static int SizeOf(int i) => i % 2500 == 1249 ? Largest : i % 1000 == 999 ? 100_000 : i * 7919 % 4096 + 1;

    /// <summary>A WebSocket frame on the wire: header (2 bytes, plus 2 or 8 for the length) and, from a client, a 4-byte mask.</summary>
    internal static long FrameBytes(long payload, bool masked) => payload + 2 + (payload < 126 ? 0 : payload < 65536 ? 2 : 8) + (masked ? 4 : 0);

    internal static async Task<TestOrigin> StartOriginAsync(System.Collections.Concurrent.ConcurrentQueue<string> reports) => await TestOrigin.StartAsync("ws", app =>
    {
        app.UseWebSockets();
        // Echoes every fragment as it arrives (message boundaries kept) and reports "count sha" of what it read at the close.
        app.Map("/echo", async (HttpContext context) =>
        {
            using var ws = await context.WebSockets.AcceptWebSocketAsync();
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[128 * 1024];
            int messages = 0;
            while (true)
            {
                WebSocketReceiveResult r;
                try { r = await ws.ReceiveAsync(buffer, CancellationToken.None); }
                catch (WebSocketException e) { reports.Enqueue("failed: " + e.Message); return; }
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    reports.Enqueue($"{messages} {Convert.ToHexString(hash.GetHashAndReset())} {(int?)r.CloseStatus} {r.CloseStatusDescription}");
                    await ws.CloseOutputAsync(r.CloseStatus ?? WebSocketCloseStatus.NormalClosure, r.CloseStatusDescription, CancellationToken.None);
                    return;
                }
                hash.AppendData(buffer, 0, r.Count);
                if (r.EndOfMessage) messages++;
                try { await ws.SendAsync(buffer.AsMemory(0, r.Count), r.MessageType, r.EndOfMessage, CancellationToken.None); }
                catch (WebSocketException e) { reports.Enqueue("failed: " + e.Message); return; }
            }
        });
        app.Map("/server-closes", async (HttpContext context) =>
        {
            using var ws = await context.WebSockets.AcceptWebSocketAsync();
            await ws.SendAsync("hi"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
            await ws.CloseAsync(WebSocketCloseStatus.PolicyViolation, "server says bye", CancellationToken.None);
            reports.Enqueue($"closed {(int?)ws.CloseStatus}");
        });
        app.Map("/abort", async (HttpContext context) =>
        {
            using var ws = await context.WebSockets.AcceptWebSocketAsync();
            await ws.SendAsync("going"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
            await ws.ReceiveAsync(new byte[16], CancellationToken.None); // the client's "ack": the tunnel is up end to end
            context.Abort(); // a reset, no close handshake
        });
    });

    private static async Task<ClientWebSocket> ConnectAsync(ForwarderTestBed bed, string path)
    {
        var client = new ClientWebSocket();
        client.Options.KeepAliveInterval = TimeSpan.Zero; // no pings: the test counts every byte
        client.Options.CollectHttpResponseDetails = true;
        await client.ConnectAsync(new Uri($"ws://{new Uri(bed.Url).Authority}{path}"), CancellationToken.None);
        return client;
    }

    /// <summary>
    /// Sends messages 0..count-1 (BodyPattern bytes, <see cref="SizeOf"/> long) while reading the echo: returns the bytes
    /// sent, and the bytes and sha256 received once as many messages came back.
    /// </summary>
    private static async Task<(long Sent, long Received, string Sha)> EchoAsync(ClientWebSocket client, int count)
    {
        long total = Enumerable.Range(0, count).Sum(i => (long)SizeOf(i));
        var sending = Task.Run(async () =>
        {
            var buffer = new byte[Largest];
            long position = 0;
            for (int i = 0; i < count; i++)
            {
                int size = SizeOf(i);
                BodyPattern.Fill(buffer.AsSpan(0, size), position);
                position += size;
                await client.SendAsync(buffer.AsMemory(0, size), WebSocketMessageType.Binary, true, CancellationToken.None);
            }
        });
        using var received = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var chunk = new byte[128 * 1024];
        int messages = 0;
        long bytes = 0;
        while (messages < count)
        {
            var r = await client.ReceiveAsync(chunk.AsMemory(), CancellationToken.None);
            received.AppendData(chunk, 0, r.Count);
            bytes += r.Count;
            if (r.EndOfMessage) messages++;
        }
        await sending;
        return (total, bytes, Convert.ToHexString(received.GetHashAndReset()));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Echo_10000MessagesBothWays_ShaExact_SplicedBothWaysOnTheZeroCopyPath(bool zeroCopy)
    {
        var reports = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var origin = await StartOriginAsync(reports);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url, zeroCopy: zeroCopy ? "" : "\"Enabled\": false");
        using var client = await ConnectAsync(bed, "/echo");
        Assert.Equal("websocket", client.HttpResponseHeaders!.Single(h => h.Key.Equals("Upgrade", StringComparison.OrdinalIgnoreCase)).Value.Single());

        var (total, bytes, sha) = await EchoAsync(client, Messages);
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);

        var expected = BodyPattern.Sha256(total);
        Assert.Equal((total, expected), (bytes, sha));
        await Poll.UntilAsync(() => !reports.IsEmpty, "the origin's report");
        Assert.Equal($"{Messages} {expected} 1000 bye", Assert.Single(reports)); // and the client's close reached it
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);       // and its answer came back
        PathAssert.ForwardedOn(bed.Proxy, zeroCopy);
        if (!zeroCopy) return;

        await Poll.UntilAsync(() => bed.Forwarding.Upgraded(RelayEnd.Completed).Value == 1, "the tunnel to end with both sides finished");
        // Client frames are deterministic (one masked frame per message, then the close frame with 1000 "bye"); the
        // origin may split an echo into several frames, so its side is at least the payload plus a header per message.
        long requestWire = Enumerable.Range(0, Messages).Sum(i => FrameBytes(SizeOf(i), masked: true)) + FrameBytes(2 + 3, masked: true);
        Assert.Equal(requestWire, bed.Metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Request));
        Assert.True(bed.Metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response) >= total + 2L * Messages);
        Assert.Equal(0, bed.Metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Request) + bed.Metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Response));
    }

    [Fact]
    public async Task ServerClose_ReachesTheClient_WithItsStatus()
    {
        var reports = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var origin = await StartOriginAsync(reports);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        using var client = await ConnectAsync(bed, "/server-closes");

        var buffer = new byte[64];
        var hi = await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
        Assert.Equal("hi", Encoding.ASCII.GetString(buffer, 0, hi.Count));
        var close = await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
        Assert.Equal(WebSocketMessageType.Close, close.MessageType);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, client.CloseStatus);
        Assert.Equal("server says bye", client.CloseStatusDescription);
        await client.CloseOutputAsync(WebSocketCloseStatus.PolicyViolation, "ok", CancellationToken.None);

        await Poll.UntilAsync(() => reports.Contains("closed 1008"), "the origin's close handshake to complete through the tunnel");
        await Poll.UntilAsync(() => bed.Forwarding.Upgraded(RelayEnd.Completed).Value == 1, "the tunnel to end with both sides finished");
    }

    [Fact]
    public async Task UpstreamReset_ResetsTheClient_AndIsCounted()
    {
        var reports = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var origin = await StartOriginAsync(reports);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        using var client = await ConnectAsync(bed, "/abort");

        var buffer = new byte[64];
        Assert.Equal(5, (await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None)).Count);
        await client.SendAsync("ack"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        await Assert.ThrowsAsync<WebSocketException>(async () => await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None));
        await Poll.UntilAsync(() => bed.Forwarding.Upgraded(RelayEnd.UpstreamFailed).Value == 1, "the tunnel to end as upstream_error");
    }

    [Fact]
    public async Task StalledWebSocket_IsClosedByTheIdleTimeout()
    {
        var reports = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var origin = await StartOriginAsync(reports);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url, zeroCopy: "\"BodyIdleTimeout\": \"500ms\"");
        using var client = await ConnectAsync(bed, "/echo");
        await client.SendAsync("once"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[64];
        Assert.Equal(4, (await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None)).Count);

        // Then neither side sends: the proxy closes the tunnel (no close handshake: the client sees the connection end).
        using var bounded = new CancellationTokenSource(Poll.DefaultTimeout);
        await Assert.ThrowsAsync<WebSocketException>(async () => await client.ReceiveAsync(buffer.AsMemory(), bounded.Token));
        await Poll.UntilAsync(() => bed.Forwarding.Upgraded(RelayEnd.IdleTimeout).Value == 1, "the tunnel to end as idle_timeout");
        await Poll.UntilAsync(() => reports.Any(r => r.StartsWith("failed")), "the origin's side of the tunnel to be closed too");
    }

    [Fact]
    public async Task BytesAlreadyReadOnEitherSide_GoFirst_ThenHalfCloseFlows()
    {
        await using var origin = TcpOrigin.Start(async (socket, o) =>
        {
            var head = new List<byte>();
            while (head.Count < 4 || !head.TakeLast(4).SequenceEqual("\r\n\r\n"u8.ToArray())) head.AddRange(await TcpOrigin.ReceiveExactlyAsync(socket, 1, o.Stopping));
            var text = Encoding.ASCII.GetString([.. head]);
            o.Reports.Enqueue(text.Contains("\r\nUpgrade: raw\r\n") && text.Contains("\r\nConnection: Upgrade\r\n") ? "upgrade asked" : "no upgrade in: " + text);
            // The 101 and the new protocol's first bytes in one send: the proxy may read them together.
            await TcpOrigin.SendAllAsync(socket, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\nfrom-upstream"u8.ToArray(), o.Stopping);
            o.Reports.Enqueue(Encoding.ASCII.GetString(await TcpOrigin.ReceiveExactlyAsync(socket, 11, o.Stopping)));
            var (length, _) = await StreamWire.ReceiveAllAsync(socket, o.Stopping); // to the client's FIN
            o.Reports.Enqueue($"then {length}");
            await TcpOrigin.SendAllAsync(socket, "after-fin"u8.ToArray(), o.Stopping); // the other way still flows
            socket.Shutdown(SocketShutdown.Send);
        });
        await using var bed = await ForwarderTestBed.StartAsync($"http://127.0.0.1:{origin.Port}/");
        var (socket, _) = await bed.ConnectRawAsync();
        using var bounded = new CancellationTokenSource(Poll.DefaultTimeout); // a lost byte fails the test instead of hanging it
        using (socket)
        {
            // The client's first bytes of the new protocol ride with its request head: Kestrel's read takes them along.
            await TcpOrigin.SendAllAsync(socket, "GET /raw HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\nfrom-client"u8.ToArray());
            var response = new List<byte>();
            while (!Encoding.ASCII.GetString([.. response]).EndsWith("\r\n\r\nfrom-upstream", StringComparison.Ordinal))
                response.AddRange(await TcpOrigin.ReceiveExactlyAsync(socket, 1, bounded.Token));
            var text = Encoding.ASCII.GetString([.. response]);
            Assert.StartsWith("HTTP/1.1 101 Switching Protocols\r\n", text);
            Assert.Contains("\r\nUpgrade: raw\r\n", text);
            await StreamWire.SendPatternAsync(socket, 1 << 20, bounded.Token);
            socket.Shutdown(SocketShutdown.Send);
            var (length, _) = await StreamWire.ReceiveAllAsync(socket, bounded.Token);
            Assert.Equal("after-fin".Length, length);
        }
        Assert.Equal(["upgrade asked", "from-client", $"then {1 << 20}"], origin.Reports.ToArray());
        await Poll.UntilAsync(() => bed.Forwarding.Upgraded(RelayEnd.Completed).Value == 1, "the tunnel to end with both sides finished");
    }

    [Fact]
    public async Task H2cUpgrade_IsNotTunnelled_ItGoesToYarpAsBefore()
    {
        await using var origin = await TestOrigin.StartAsync("O");
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        var (socket, reader) = await bed.ConnectRawAsync();
        using (socket)
        {
            await ForwarderTestBed.SendAsync(socket, "GET /h HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
            Assert.Equal(200, (await reader.ReadResponseAsync()).Status);
        }
        Assert.Equal((1, 0), (bed.Forwarding.Yarp.Value, bed.Forwarding.ZeroCopy.Value));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AccessLog_OneLinePerUpgradedRequest_WhenItEnds_WithTheBytesSentToTheClient(bool zeroCopy)
    {
        var reports = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var origin = await StartOriginAsync(reports);
        using var logDirectory = new ConfigDirectory();
        var logFile = Path.Combine(logDirectory.Root, "access.log");
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url, zeroCopy: zeroCopy ? "" : "\"Enabled\": false", accessLog: logFile);
        using (var client = await ConnectAsync(bed, "/echo?q=1"))
        {
            await EchoAsync(client, 3);
            await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        }
        await Poll.UntilAsync(() => File.Exists(logFile) && File.ReadAllText(logFile).Contains("/echo"), "the access-log line of the upgraded request");

        var line = File.ReadAllLines(logFile).Single(l => l.Contains("/echo"));
        // nginx logs a WebSocket's $body_bytes_sent as the bytes its tunnel sent; YARP's copying relay does not tell them.
        long toClient = bed.Metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response) + bed.Metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Response);
        Assert.Matches(new System.Text.RegularExpressions.Regex(
            $@"""GET /echo\?q=1 HTTP/1\.1"" 101 {(zeroCopy ? toClient.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-")} "".*"" "".*"" upstream=\S+ rt=\d+\.\d{{3}} urt=\d+\.\d{{3}} cache=-$"), line);
        if (zeroCopy) Assert.True(toClient > SizeOf(0) + SizeOf(1) + SizeOf(2), $"the tunnel's bytes to the client: {toClient}");
        PathAssert.ForwardedOn(bed.Proxy, zeroCopy);
    }

    [Fact]
    public async Task Shutdown_AfterTheDrain_StopsOpenTunnels()
    {
        var reports = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var origin = await StartOriginAsync(reports);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url, options: "\"DrainTimeout\": \"200ms\"");
        using var client = await ConnectAsync(bed, "/echo");
        await EchoAsync(client, 2);

        await bed.Proxy.StopAsync(); // SIGTERM: the tunnel does not end by itself within DrainTimeout, so Kestrel aborts it
        await Poll.UntilAsync(() => bed.Forwarding.Upgraded(RelayEnd.Stopped).Value == 1, "the tunnel to end as stopped");
        using var bounded = new CancellationTokenSource(Poll.DefaultTimeout);
        await Assert.ThrowsAsync<WebSocketException>(async () => await client.ReceiveAsync(new byte[16].AsMemory(), bounded.Token));
        await Poll.UntilAsync(() => !reports.IsEmpty, "the origin's side of the tunnel to be closed too");
    }

    /// <summary>A TLS listener (YARP's forwarder, whose upgrade handling copies): wss through the proxy to a ws origin.</summary>
    [Fact]
    public async Task Echo_OverATlsListener_GoesThroughYarp_ShaExact()
    {
        var reports = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var origin = await StartOriginAsync(reports);
        using var certificate = TestCertificates.SelfSigned("localhost");
        using var dir = new ConfigDirectory();
        TestCertificates.WritePem(certificate, Path.Combine(dir.Root, "c.pem"), Path.Combine(dir.Root, "c.key"));
        ZcProxy.Tests.Tls.TlsRig.WriteMain(dir, """{ "Url": "https://127.0.0.1:0", "Certificate": "c.pem", "CertificateKey": "c.key" }""", origin.Url);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = new ClientWebSocket();
        client.Options.KeepAliveInterval = TimeSpan.Zero;
        client.Options.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        await client.ConnectAsync(new Uri($"wss://{new Uri(proxy.Url).Authority}/echo"), CancellationToken.None);

        var (total, bytes, sha) = await EchoAsync(client, 1300); // the 1250th is 1.5 MiB
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);

        Assert.Equal((total, BodyPattern.Sha256(total)), (bytes, sha));
        await Poll.UntilAsync(() => !reports.IsEmpty, "the origin's report");
        Assert.Equal($"1300 {BodyPattern.Sha256(total)} 1000 bye", Assert.Single(reports));
        PathAssert.ForwardedOn(proxy, zeroCopy: false);
    }
}
