using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Upstream;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// Uploads (client → upstream bodies) through both forwarders: on the zero-copy path a Content-Length body of at least
/// SpliceThreshold is spliced client socket → pipe → upstream socket (the bytes read with the request head go first,
/// copied); smaller ones, and everything on YARP's path, are copied. The origin checks length and sha256; the next
/// request on the same client connection proves keep-alive.
/// </summary>
public sealed class UploadSpliceTests
{
    private const int Threshold = 64 * 1024;

    /// <summary>An origin whose /upload answers "length sha256" of the body it read (no body size limit of its own).</summary>
    internal static Task<TestOrigin> StartOriginAsync() => TestOrigin.StartAsync("o", app =>
        app.MapPost("/upload", async (HttpContext context) =>
        {
            context.Features.Get<IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = null;
            var (sha, length) = await BodyPattern.HashStreamAsync(context.Request.Body);
            return Results.Text($"{length} {sha}");
        }));

    private static async Task<(ConfigDirectory Dir, InProcessProxy Proxy)> StartProxyAsync(string originUrl, bool zeroCopy, string zeroCopyExtra = "", string options = "",
        string accessLog = "off", string? clusters = null, string accessLogFormat = "main")
    {
        var dir = new ConfigDirectory();
        clusters ??= $$""" "c": { "Destinations": { "d": { "Address": "{{originUrl}}" } } } """;
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { {{clusters}} } }
            """, $$"""
            "AccessLog": { "Path": "{{accessLog}}", "Format": "{{accessLogFormat}}" }, {{(options.Length > 0 ? options + "," : "")}}
            "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}}, "SpliceThreshold": {{Threshold}} {{zeroCopyExtra}} }
            """);
        try { return (dir, await InProcessProxy.StartAsync(dir.MainFile)); }
        catch { dir.Dispose(); throw; }
    }

    private static string UploadHead(long length, string path = "/upload") => $"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n";

    /// <summary>Sends a POST of <paramref name="length"/> pattern bytes on <paramref name="socket"/> (head and body, as a client would).</summary>
    internal static async Task SendUploadAsync(Socket socket, long length, string path = "/upload")
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes(UploadHead(length, path)).AsMemory());
        foreach (var piece in BodyPattern.Pieces(length)) await socket.SendAsync(piece);
    }

    private static long Body(InProcessProxy proxy, BodyMechanism mechanism) => proxy.Get<ProxyMetrics>().GetBodyBytes(mechanism, BodyDirection.Request);

    [Theory]
    [InlineData(true, 0)]
    [InlineData(true, 1)]
    [InlineData(true, Threshold - 1)]
    [InlineData(true, Threshold)]
    [InlineData(true, 1 << 20)]
    [InlineData(true, 16 << 20)]
    [InlineData(true, 64 << 20)]
    [InlineData(false, 1)]
    [InlineData(false, Threshold)]
    [InlineData(false, 64 << 20)]
    public async Task Upload_ArrivesShaExact_SplicedFromTheThreshold_AndTheConnectionIsKeptAlive(bool zeroCopy, long length)
    {
        await using var origin = await StartOriginAsync();
        var (dir, proxy) = await StartProxyAsync(origin.Url, zeroCopy);
        using var _ = dir;
        await using var __ = proxy;
        var uri = new Uri(proxy.Url);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        var reader = new RawReader(socket);

        var sending = SendUploadAsync(socket, length);
        var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await sending;
        Assert.Equal(200, response.Status);
        Assert.Equal($"{length} {BodyPattern.Sha256(length)}", Encoding.ASCII.GetString(response.Body));
        Assert.False(response.Headers.ContainsKey("Connection"), "the connection must stay open after the upload");

        // Keep-alive: the next request on the same connection is served (another upload, then a GET).
        await SendUploadAsync(socket, 3);
        var second = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal($"3 {BodyPattern.Sha256(3)}", Encoding.ASCII.GetString(second.Body));
        await AssertAGetIsServedAfterAsync(socket, reader);

        PathAssert.ForwardedOn(proxy, zeroCopy);
        long spliced = Body(proxy, BodyMechanism.Splice), copied = Body(proxy, BodyMechanism.Copy);
        Assert.Equal(length + 3, spliced + copied); // every body byte counted once
        if (zeroCopy && length >= Threshold)
            // Only what came with the request head (one input block at most) was in user space.
            Assert.InRange(spliced, length - ZeroCopyTransport.BlockSize, length);
        else Assert.Equal(0, spliced);
    }

    /// <summary>
    /// A client that waits for 100 Continue before its body (curl and .NET do for large uploads): it gets exactly one
    /// interim response, then the body is spliced (zero-copy path) sha-exact, and the connection is kept alive.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ExpectContinueUpload_GetsOne100_ThenArrivesShaExact_AndTheConnectionIsKeptAlive(bool zeroCopy)
    {
        const long Length = 1 << 20;
        await using var origin = await StartOriginAsync();
        var (dir, proxy) = await StartProxyAsync(origin.Url, zeroCopy);
        using var _ = dir;
        await using var __ = proxy;
        var (socket, reader) = await ConnectAsync(proxy);
        using var ___ = socket;

        var head = $"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {Length}\r\n\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(head).AsMemory());
        var interim = await reader.ReadResponseAsync(noBody: true).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(100, interim.Status);
        foreach (var piece in BodyPattern.Pieces(Length)) await socket.SendAsync(piece);
        var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(200, response.Status); // not a second 100 (the origin's own, relayed): the final answer
        Assert.Equal($"{Length} {BodyPattern.Sha256(Length)}", Encoding.ASCII.GetString(response.Body));

        await AssertAGetIsServedAfterAsync(socket, reader);

        PathAssert.ForwardedOn(proxy, zeroCopy);
        long spliced = Body(proxy, BodyMechanism.Splice), copied = Body(proxy, BodyMechanism.Copy);
        Assert.Equal(Length, spliced + copied);
        if (zeroCopy) Assert.InRange(spliced, Length - ZeroCopyTransport.BlockSize, Length);
        else Assert.Equal(0, spliced);
    }

    /// <summary>
    /// 100 Continue is sent when the body is first read, which the spliced path does only once the upstream connection
    /// is up and the head sent: an upstream that cannot be reached gets the client its 502 with no 100 before it (the
    /// client never sends a body nobody will take).
    /// </summary>
    [Fact]
    public async Task ExpectContinueUpload_WhoseUpstreamRefuses_Gets502_WithNo100Before()
    {
        const long Length = 1 << 20;
        var (dir, proxy) = await StartProxyAsync($"http://127.0.0.1:{BalancingTestConfig.RefusingPort()}/", zeroCopy: true);
        using var _ = dir;
        await using var __ = proxy;
        var (socket, reader) = await ConnectAsync(proxy);
        using var ___ = socket;

        await socket.SendAsync(Encoding.ASCII.GetBytes($"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {Length}\r\n\r\n").AsMemory());
        var first = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(502, first.Status);
        Assert.Equal(0, Body(proxy, BodyMechanism.Splice) + Body(proxy, BodyMechanism.Copy));
    }

    /// <summary>A Content-Length over the body limit is refused from the head: the final 413 and no 100 Continue before it.</summary>
    [Fact]
    public async Task ExpectContinueUpload_OverTheBodyLimit_Gets413_WithNo100Before()
    {
        await using var origin = await StartOriginAsync();
        var (dir, proxy) = await StartProxyAsync(origin.Url, zeroCopy: true, options: """ "Limits": { "MaxRequestBodySize": "1MiB" } """);
        using var _ = dir;
        await using var __ = proxy;
        var (socket, reader) = await ConnectAsync(proxy);
        using var ___ = socket;

        await socket.SendAsync("POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2097152\r\n\r\n"u8.ToArray().AsMemory());
        var first = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(413, first.Status);
        Assert.Equal("close", first.Headers["Connection"]);
        Assert.True(await reader.PeerClosedAsync(TimeSpan.FromSeconds(30)), "nothing may follow the 413: the connection closes");
        Assert.Equal(0, origin.Requests);
    }

    /// <summary>Keep-alive after an upload: a GET on the same connection is answered.</summary>
    private static async Task AssertAGetIsServedAfterAsync(Socket socket, RawReader reader)
    {
        await socket.SendAsync("GET /after HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray().AsMemory());
        var after = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("o GET /after", Encoding.ASCII.GetString(after.Body));
    }

    private static async Task<(Socket Socket, RawReader Reader)> ConnectAsync(InProcessProxy proxy)
    {
        var uri = new Uri(proxy.Url);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        return (socket, new RawReader(socket));
    }

    /// <summary>Sends bytes until the proxy stops taking them (it answered and closed); never throws.</summary>
    private static Task SendUntilRefusedAsync(Socket socket, long length) => Task.Run(async () =>
    {
        try { await SendUploadAsync(socket, length); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    });

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AccessLog_RequestLength_IsTheHeadAndTheBody_SplicedOrCopied(bool zeroCopy)
    {
        const long Length = 1 << 20;
        await using var origin = await StartOriginAsync();
        var log = Path.Combine(Path.GetTempPath(), $"zcproxy-upload-{Guid.NewGuid():N}.log");
        using var deleteLog = new DeleteOnDispose(log);
        var (dir, proxy) = await StartProxyAsync(origin.Url, zeroCopy, accessLog: log, accessLogFormat: "$request $status $request_length");
        using var _ = dir;
        await using var __ = proxy;
        var (socket, reader) = await ConnectAsync(proxy);
        using (socket)
        {
            var sending = SendUploadAsync(socket, Length);
            Assert.Equal(200, (await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30))).Status);
            await sending;
        }
        await Poll.UntilAsync(() => File.Exists(log) && File.ReadAllText(log).Contains("POST /upload", StringComparison.Ordinal), "the access-log line");
        Assert.Equal($"POST /upload HTTP/1.1 200 {UploadHead(Length).Length + Length}", File.ReadAllLines(log).Single());
        PathAssert.ForwardedOn(proxy, zeroCopy);
        if (zeroCopy) Assert.True(Body(proxy, BodyMechanism.Splice) > 0);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Upload_OverTheBodyLimit_Gets413_BeforeAnyBodyByteIsRead(bool zeroCopy)
    {
        await using var origin = await StartOriginAsync();
        var (dir, proxy) = await StartProxyAsync(origin.Url, zeroCopy, options: """ "Limits": { "MaxRequestBodySize": "1MiB" } """);
        using var _ = dir;
        await using var __ = proxy;
        var (socket, reader) = await ConnectAsync(proxy);
        using (socket)
        {
            // Only the head: the answer must not wait for any body byte.
            await socket.SendAsync("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n"u8.ToArray().AsMemory());
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(413, response.Status);
            Assert.Equal("close", response.Headers["Connection"]);
        }
        Assert.Equal(0, origin.Requests);
        Assert.Equal(0, Body(proxy, BodyMechanism.Splice) + Body(proxy, BodyMechanism.Copy));
    }

    /// <summary>
    /// Zero-copy path only: YARP's forwarder answers 502 when the upstream answers early and closes (its body send
    /// fails first), as it did before request bodies were spliced.
    /// </summary>
    [Fact]
    public async Task EarlyResponse_WhileTheBodyIsSpliced_ReachesTheClient_NeitherConnectionIsReused()
    {
        const bool zeroCopy = true;
        const long Length = 64L << 20, ReadFirst = 1 << 20;
        await using var origin = new PartialReadOrigin(ReadFirst, PartialReadOrigin.Then.Answer413);
        var (dir, proxy) = await StartProxyAsync(origin.Url, zeroCopy);
        using var _ = dir;
        await using var __ = proxy;
        var (socket, reader) = await ConnectAsync(proxy);
        using (socket)
        {
            var uploading = SendUntilRefusedAsync(socket, Length);
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(413, response.Status);
            Assert.Equal("too big!", Encoding.ASCII.GetString(response.Body));
            Assert.Equal("close", response.Headers["Connection"]);
            // The unread rest of the body makes the client connection unusable: the proxy ends it.
            var closed = socket.ReceiveAsync(new byte[1024].AsMemory()).AsTask();
            Assert.True(await Task.WhenAny(closed, Task.Delay(TimeSpan.FromSeconds(30))) == closed, "the proxy did not close the client connection");
            try { Assert.Equal(0, await closed); } catch (SocketException) { } // FIN or RST, no further bytes
            socket.Shutdown(SocketShutdown.Both);
            await uploading.WaitAsync(TimeSpan.FromSeconds(30));
        }
        Assert.Equal(0, proxy.Get<UpstreamConnectionPool>().IdleCount); // the upstream connection was mid-request: discarded
        long spliced = Body(proxy, BodyMechanism.Splice), moved = spliced + Body(proxy, BodyMechanism.Copy);
        Assert.InRange(moved, ReadFirst, Length - 1); // the origin read its first MiB, and sending stopped
        Assert.True(spliced >= ReadFirst - ZeroCopyTransport.BlockSize, $"{spliced} bytes spliced");
        PathAssert.ForwardedOn(proxy, zeroCopy);

        // The proxy keeps serving: another upload on a new connection meets the same early answer.
        var (again, againReader) = await ConnectAsync(proxy);
        using (again)
        {
            var sending = SendUntilRefusedAsync(again, 2 * ReadFirst);
            Assert.Equal(413, (await againReader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30))).Status);
            again.Shutdown(SocketShutdown.Both);
            await sending.WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>
    /// The same early answer to a client that sends its whole body before it reads anything: the proxy's close lingers
    /// (drops the rest of the body), so the 413 is still there to be read. Closed at once (LingeringClose "off"), the
    /// client's send or read failed with a reset in 4 of 5 runs: the answer was lost.
    /// </summary>
    [Fact]
    public async Task EarlyResponse_WhileTheBodyIsSpliced_ReachesAClientThatReadsOnlyAfterSendingItAll()
    {
        const long Length = 16L << 20, ReadFirst = 1 << 20;
        await using var origin = new PartialReadOrigin(ReadFirst, PartialReadOrigin.Then.Answer413);
        var (dir, proxy) = await StartProxyAsync(origin.Url, zeroCopy: true);
        using var _ = dir;
        await using var __ = proxy;
        var (socket, reader) = await ConnectAsync(proxy);
        using (socket)
        {
            await SendUploadAsync(socket, Length);
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(413, response.Status);
            Assert.Equal("too big!", Encoding.ASCII.GetString(response.Body));
            Assert.True(await reader.PeerClosedAsync(TimeSpan.FromSeconds(30)), "the proxy did not close after the answer");
        }
        var counts = proxy.Get<ZeroCopyTransport>().LingeringCounts;
        await Poll.UntilAsync(() => counts.Get(LingeringEnd.ClientClosed) == 1, "the lingering close ended by the client's close");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Upload_WhoseBytesReachedAFailingDestination_IsNotRetried_AConnectFailureIs(bool zeroCopy)
    {
        const long Length = 4L << 20;
        await using var resetting = new PartialReadOrigin(256 * 1024, PartialReadOrigin.Then.Reset);
        await using var live = await StartOriginAsync();
        int refusing = BalancingTestConfig.RefusingPort();

        // "a" first, always (no breaker): it reads part of the body and resets. The upload cannot be replayed (as with
        // nginx's proxy_request_buffering off): 502, and the live destination never sees it.
        var (status, first, firstDir) = await UploadThroughAsync(zeroCopy, live.Url, BalancingTestConfig.Destination("a", resetting.Url), BalancingTestConfig.Destination("b", live.Url));
        await first.DisposeAsync();
        firstDir.Dispose();
        Assert.Equal(502, status);
        Assert.Equal(1, resetting.Accepted);
        Assert.Equal(0, live.Requests);

        // "a" refuses the connection: no byte left the proxy, so the upload goes to "b", whole.
        var (retriedStatus, proxy, dir) = await UploadThroughAsync(zeroCopy, live.Url, BalancingTestConfig.Destination("a", $"http://127.0.0.1:{refusing}/"), BalancingTestConfig.Destination("b", live.Url));
        using var _ = dir;
        await using var __ = proxy;
        Assert.Equal(200, retriedStatus);
        Assert.Equal(1, live.Requests);
        Assert.Equal(1, proxy.Get<ProxyMetrics>().CounterValue("zcproxy_upstream_retries_total", ("reason", "connect_error")));
        Assert.Equal(1, proxy.Get<RetryMetrics>().Total);
        if (zeroCopy) Assert.InRange(Body(proxy, BodyMechanism.Splice), Length - ZeroCopyTransport.BlockSize, Length);
        PathAssert.ForwardedOn(proxy, zeroCopy);

        async Task<(int Status, InProcessProxy Proxy, ConfigDirectory Dir)> UploadThroughAsync(bool zeroCopy, string url, params string[] destinations)
        {
            var (dir, proxy) = await StartProxyAsync(url, zeroCopy, clusters: BalancingTestConfig.Cluster("c", "FirstAlphabetical", "\"MaxFails\": 0", destinations));
            var (socket, reader) = await ConnectAsync(proxy);
            using (socket)
            {
                var uploading = SendUntilRefusedAsync(socket, Length);
                var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
                if (response.Status == 200) Assert.Equal($"{Length} {BodyPattern.Sha256(Length)}", Encoding.ASCII.GetString(response.Body));
                socket.Shutdown(SocketShutdown.Both);
                await uploading.WaitAsync(TimeSpan.FromSeconds(30));
                return (response.Status, proxy, dir);
            }
        }
    }

    [Fact]
    public async Task ClientStoppingMidUpload_DiscardsTheUpstreamConnection_LogsIt_AndCountsWhatMoved()
    {
        const long Length = 16L << 20, Sent = 1L << 20;
        var truncated = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var origin = await TestOrigin.StartAsync("o", app => app.MapPost("/upload", async (HttpContext context) =>
        {
            long read = 0;
            var buffer = new byte[64 * 1024];
            try
            {
                int n;
                while ((n = await context.Request.Body.ReadAsync(buffer)) > 0) read += n;
                truncated.TrySetResult($"complete {read}");
            }
            catch (Exception e) when (e is IOException or Microsoft.AspNetCore.Http.BadHttpRequestException or OperationCanceledException)
            {
                truncated.TrySetResult($"truncated {read}");
            }
        }));
        var log = Path.Combine(Path.GetTempPath(), $"zcproxy-upload-{Guid.NewGuid():N}.log");
        using var deleteLog = new DeleteOnDispose(log);
        var (dir, proxy) = await StartProxyAsync(origin.Url, zeroCopy: true, accessLog: log, accessLogFormat: "$request $status $request_length");
        using var _ = dir;
        await using var __ = proxy;
        var (socket, _) = await ConnectAsync(proxy);
        using (socket)
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes($"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {Length}\r\n\r\n").AsMemory());
            foreach (var piece in BodyPattern.Pieces(Sent)) await socket.SendAsync(piece);
            await Poll.UntilAsync(() => Body(proxy, BodyMechanism.Splice) > 0, "the body is being spliced");
            socket.Shutdown(SocketShutdown.Send); // the client stops sending: a FIN mid-body

            // The client still reads (only its sending side is shut) until the request is logged: closing the socket
            // at once raced the proxy's answer, and a request the client abandoned entirely is logged 499 instead.
            // The origin saw the body end early (the upstream connection was closed, not kept for another request).
            // (Kestrel drops what it holds when it meets the early end, so the origin's count is at most what was sent.)
            var seen = (await truncated.Task.WaitAsync(TimeSpan.FromSeconds(30))).Split(' ');
            Assert.Equal("truncated", seen[0]);
            Assert.InRange(long.Parse(seen[1], System.Globalization.CultureInfo.InvariantCulture), 1, Sent);
            Assert.Equal(0, proxy.Get<UpstreamConnectionPool>().IdleCount);
            Assert.Equal(Sent, Body(proxy, BodyMechanism.Splice) + Body(proxy, BodyMechanism.Copy)); // every byte the client sent, once
            await Poll.UntilAsync(() => File.Exists(log) && File.ReadAllText(log).Contains("POST /upload", StringComparison.Ordinal), "the access-log line");
            var line = File.ReadAllLines(log).Single(l => l.Contains("POST /upload", StringComparison.Ordinal));
            // The request as far as it arrived: its head and the megabyte of body the client sent.
            Assert.Equal($"POST /upload HTTP/1.1 400 {UploadHead(Length).Length + Sent}", line);
        }
        await Poll.UntilAsync(() => proxy.Get<ZeroCopyTransport>().OpenConnections == 0, "the client connection ended");
    }

    [Fact]
    public async Task SlowLorisUpload_Gets408_AfterClientBodyTimeout_AndTheConnectionCloses()
    {
        await using var origin = await StartOriginAsync();
        // A short configured timeout: the test waits for the 408, it never measures how long it took.
        var (dir, proxy) = await StartProxyAsync(origin.Url, zeroCopy: true, zeroCopyExtra: """, "ClientBodyTimeout": "300ms" """);
        using var _ = dir;
        await using var __ = proxy;
        var (socket, reader) = await ConnectAsync(proxy);
        using (socket)
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes($"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 20}\r\n\r\n").AsMemory());
            foreach (var piece in BodyPattern.Pieces(200_000)) await socket.SendAsync(piece);
            // ... and then nothing more.
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(408, response.Status);
            Assert.Equal("close", response.Headers["Connection"]);
            Assert.Equal(0, await socket.ReceiveAsync(new byte[16].AsMemory()).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        }
        Assert.Equal(200_000, Body(proxy, BodyMechanism.Splice) + Body(proxy, BodyMechanism.Copy));
        Assert.True(Body(proxy, BodyMechanism.Splice) > 0);
        Assert.Equal(0, proxy.Get<UpstreamConnectionPool>().IdleCount);
    }

    /// <summary>
    /// A raw origin that reads a request's first bytes (head and the start of its body), then either answers 413 and
    /// closes with the rest unread (an early response) or resets the connection.
    /// </summary>
    private sealed class PartialReadOrigin : IAsyncDisposable
    {
        public enum Then { Answer413, Reset }

        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly long _readFirst;
        private readonly Then _then;
        private int _accepted;

        public PartialReadOrigin(long readFirst, Then then)
        {
            _readFirst = readFirst;
            _then = then;
            _listener.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
            _listener.Listen(16);
            _ = AcceptLoopAsync();
        }

        public string Url => $"http://{_listener.LocalEndPoint}/";
        public int Accepted => Volatile.Read(ref _accepted);

        private async Task AcceptLoopAsync()
        {
            while (true)
            {
                Socket socket;
                try { socket = await _listener.AcceptAsync(); } catch { return; }
                Interlocked.Increment(ref _accepted);
                _ = Task.Run(async () =>
                {
                    using (socket)
                    {
                        var buffer = new byte[64 * 1024];
                        for (long read = 0; read < _readFirst;)
                        {
                            int n = await socket.ReceiveAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, _readFirst - read)));
                            if (n == 0) return;
                            read += n;
                        }
                        if (_then == Then.Reset) socket.LingerState = new LingerOption(true, 0);
                        else await socket.SendAsync("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!"u8.ToArray().AsMemory());
                    }
                });
            }
        }

        public ValueTask DisposeAsync()
        {
            _listener.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    private sealed class DeleteOnDispose(string path) : IDisposable
    {
        public void Dispose()
        {
            try { File.Delete(path); } catch (IOException) { }
        }
    }
}
