using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Http1;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Forwarding;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// The key HTTP/1.1 cases on a zero-copy listener, served by Kestrel's HTTP layer ("kestrel") and by ZcProxy's own
/// ("own", ZeroCopy.Http1): the same bytes must come back either way, and in "own" mode the plain requests must be
/// served by the own layer while everything else (chunked, Expect, upgrades, malformed heads) is handed to Kestrel.
/// </summary>
[Collection(FdCountCollection.Name)] // byte-heavy: run apart from the timing-sensitive parallel tests
public sealed class Http1ModeTests
{
    private const int Threshold = 64 * 1024;

    private sealed class Rig : IAsyncDisposable
    {
        public required TestOrigin Origin { get; init; }
        public required ConfigDirectory Dir { get; init; }
        public required InProcessProxy Proxy { get; init; }
        public required bool Own { get; init; }

        public static async Task<Rig> StartAsync(string mode)
        {
            var origin = await TestOrigin.StartAsync("o", app =>
            {
                BodyPattern.MapEndpoints(app);
                app.MapPost("/upload", async (HttpContext context) =>
                {
                    context.Features.Get<IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = null;
                    var (sha, length) = await BodyPattern.HashStreamAsync(context.Request.Body);
                    return Results.Text($"{length} {sha}");
                });
            });
            var dir = new ConfigDirectory();
            dir.WriteMain($$"""
                { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
                  "Clusters": { "c": { "Destinations": { "d": { "Address": "{{origin.Url}}" } } } } }
                """, $$"""
                "AccessLog": { "Path": "off" },
                "ZeroCopy": { "Enabled": true, "SpliceThreshold": {{Threshold}}, "Http1": "{{mode}}" }
                """);
            return new Rig { Origin = origin, Dir = dir, Proxy = await InProcessProxy.StartAsync(dir.MainFile), Own = mode == "own" };
        }

        public Http1ApplicationHolder? Holder => Proxy.Services.GetService(typeof(Http1ApplicationHolder)) as Http1ApplicationHolder;
        public long Served => Holder?.Application?.Served ?? 0;
        public long HandedOver => Holder?.HandedOver ?? 0;

        public async Task<(Socket Socket, RawReader Reader)> ConnectAsync()
        {
            var uri = new Uri(Proxy.Url);
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(uri.Host, uri.Port);
            return (socket, new RawReader(socket));
        }

        public long BodyBytes(BodyMechanism mechanism, BodyDirection direction) => Proxy.Get<ProxyMetrics>().GetBodyBytes(mechanism, direction);

        /// <summary>In "own" mode the layer served exactly <paramref name="served"/> requests and handed over <paramref name="handedOver"/> connections; in "kestrel" mode it does not exist.</summary>
        public async Task AssertServedAsync(long served, long handedOver = 0)
        {
            if (!Own)
            {
                Assert.Null(Holder);
                return;
            }
            // A request counts once its object is back in the pool, just after its response was sent.
            await Poll.UntilAsync(() => Served >= served && HandedOver >= handedOver, $"{served} requests served, {handedOver} connections handed over");
            Assert.Equal((served, handedOver), (Served, HandedOver));
        }

        public async ValueTask DisposeAsync()
        {
            await Proxy.DisposeAsync();
            await Origin.DisposeAsync();
            Dir.Dispose();
        }
    }

    private static Task SendAsync(Socket socket, string text) => RawSocketOrigin.SendAsync(socket, text);

    private static readonly string Hello = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData("hello"u8));
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("kestrel")]
    [InlineData("own")]
    public async Task GetHeadPost_PipelinedAndOneAtATime_OnOneKeptAliveConnection(string mode)
    {
        await using var rig = await Rig.StartAsync(mode);
        var (socket, reader) = await rig.ConnectAsync();
        using var _ = socket;
        await SendAsync(socket, "GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n"
            + "HEAD /bytes/2000 HTTP/1.1\r\nHost: x\r\n\r\n"
            + "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            + "GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n");
        var get = await reader.ReadResponseAsync().WaitAsync(Wait);
        Assert.Equal((200, 1000, "1000"), (get.Status, get.Body.Length, get.Headers["Content-Length"]));
        Assert.Equal(BodyPattern.Sha256(1000), Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(get.Body)));
        Assert.True(get.Headers.ContainsKey("Date"));
        var head = await reader.ReadResponseAsync(noBody: true).WaitAsync(Wait);
        Assert.Equal((200, "2000"), (head.Status, head.Headers["Content-Length"]));
        var post = await reader.ReadResponseAsync().WaitAsync(Wait);
        Assert.Equal((200, $"5 {Hello}"), (post.Status, Encoding.ASCII.GetString(post.Body)));
        var noContent = await reader.ReadResponseAsync().WaitAsync(Wait);
        Assert.Equal(204, noContent.Status);

        // One at a time on the same connection: still in step (a body byte too many would break this status line).
        for (int i = 0; i < 3; i++)
        {
            await SendAsync(socket, $"GET /bytes/{10 + i} HTTP/1.1\r\nHost: x\r\n\r\n");
            var next = await reader.ReadResponseAsync().WaitAsync(Wait);
            Assert.Equal((200, 10 + i), (next.Status, next.Body.Length));
        }
        await rig.AssertServedAsync(7);
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy: true);
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("own")]
    public async Task ConnectionClose_AndHttp10_FollowTheKeepAliveRules(string mode)
    {
        await using var rig = await Rig.StartAsync(mode);
        // HTTP/1.1 with Connection: close: answered with Connection: close, then the connection ends.
        var (socket, reader) = await rig.ConnectAsync();
        using (socket)
        {
            await SendAsync(socket, "GET /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            var response = await reader.ReadResponseAsync().WaitAsync(Wait);
            Assert.Equal((200, "close"), (response.Status, response.Headers["Connection"]));
            await Assert.ThrowsAsync<EndOfStreamException>(() => reader.ReadResponseAsync().WaitAsync(Wait));
        }
        // HTTP/1.0 without keep-alive: the connection ends after the response.
        (socket, reader) = await rig.ConnectAsync();
        using (socket)
        {
            await SendAsync(socket, "GET /bytes/10 HTTP/1.0\r\n\r\n");
            var response = await reader.ReadResponseAsync().WaitAsync(Wait);
            Assert.Equal((200, 10), (response.Status, response.Body.Length));
            await Assert.ThrowsAsync<EndOfStreamException>(() => reader.ReadResponseAsync().WaitAsync(Wait));
        }
        // HTTP/1.0 with keep-alive: kept, and said so.
        (socket, reader) = await rig.ConnectAsync();
        using (socket)
        {
            for (int i = 0; i < 2; i++)
            {
                await SendAsync(socket, "GET /bytes/10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
                var response = await reader.ReadResponseAsync().WaitAsync(Wait);
                Assert.Equal((200, 10, "keep-alive"), (response.Status, response.Body.Length, response.Headers["Connection"]));
            }
        }
        await rig.AssertServedAsync(4);
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("own")]
    public async Task A16MiBResponse_IsSplicedShaExact_AndTheConnectionIsReusedAfter(string mode)
    {
        const long Size = 16L << 20;
        await using var rig = await Rig.StartAsync(mode);
        var (socket, reader) = await rig.ConnectAsync();
        using var _ = socket;
        await SendAsync(socket, $"GET /bytes/{Size} HTTP/1.1\r\nHost: x\r\n\r\n");
        var big = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal((200, Size), (big.Status, (long)big.Body.Length));
        Assert.Equal(BodyPattern.Sha256(Size), Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(big.Body)));
        await SendAsync(socket, "GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n");
        var after = await reader.ReadResponseAsync().WaitAsync(Wait);
        Assert.Equal((200, 100), (after.Status, after.Body.Length));
        Assert.True(rig.BodyBytes(BodyMechanism.Splice, BodyDirection.Response) >= Size - 64 * 1024, "the body was spliced");
        await rig.AssertServedAsync(2);
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("own")]
    public async Task AnUpload_IsSpliced_AndTheConnectionIsReusedAfter(string mode)
    {
        const long Size = 1L << 20;
        await using var rig = await Rig.StartAsync(mode);
        var (socket, reader) = await rig.ConnectAsync();
        using var _ = socket;
        var sending = UploadSpliceTests.SendUploadAsync(socket, Size);
        var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await sending;
        Assert.Equal((200, $"{Size} {BodyPattern.Sha256(Size)}"), (response.Status, Encoding.ASCII.GetString(response.Body)));
        Assert.True(rig.BodyBytes(BodyMechanism.Splice, BodyDirection.Request) > 0, "the upload was spliced");
        Assert.Equal(Size, rig.BodyBytes(BodyMechanism.Splice, BodyDirection.Request) + rig.BodyBytes(BodyMechanism.Copy, BodyDirection.Request));
        await SendAsync(socket, "GET /bytes/7 HTTP/1.1\r\nHost: x\r\n\r\n");
        var after = await reader.ReadResponseAsync().WaitAsync(Wait);
        Assert.Equal((200, 7), (after.Status, after.Body.Length));
        await rig.AssertServedAsync(2);
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("own")]
    public async Task ChunkedExpectUpgradeAndBadHeads_AreHandedToKestrel_WhichAnswersThemAsAlways(string mode)
    {
        await using var rig = await Rig.StartAsync(mode);
        // Chunked upload, after a plain request on the same connection: handed over between requests.
        var (socket, reader) = await rig.ConnectAsync();
        using (socket)
        {
            await SendAsync(socket, "GET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.Equal(200, (await reader.ReadResponseAsync().WaitAsync(Wait)).Status);
            await SendAsync(socket, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
            var chunked = await reader.ReadResponseAsync().WaitAsync(Wait);
            Assert.Equal((200, $"5 {Hello}"), (chunked.Status, Encoding.ASCII.GetString(chunked.Body)));
            await SendAsync(socket, "GET /bytes/4 HTTP/1.1\r\nHost: x\r\n\r\n"); // Kestrel serves the rest of the connection
            var after = await reader.ReadResponseAsync().WaitAsync(Wait);
            Assert.Equal((200, 4), (after.Status, after.Body.Length));
        }
        // Expect: 100-continue.
        (socket, reader) = await rig.ConnectAsync();
        using (socket)
        {
            await SendAsync(socket, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
            var interim = await reader.ReadResponseAsync(noBody: true).WaitAsync(Wait);
            Assert.Equal(100, interim.Status);
            await SendAsync(socket, "hello");
            var final = await reader.ReadResponseAsync().WaitAsync(Wait);
            Assert.Equal((200, $"5 {Hello}"), (final.Status, Encoding.ASCII.GetString(final.Body)));
        }
        // Malformed heads: Kestrel's 400 (and a missing Host in HTTP/1.1, and a request line over the limit: 414).
        foreach (var (bad, status) in new[]
        {
            ("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
            ($"GET /{new string('a', 9000)} HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        })
        {
            (socket, reader) = await rig.ConnectAsync();
            using (socket)
            {
                await SendAsync(socket, bad);
                var response = await reader.ReadResponseAsync().WaitAsync(Wait);
                Assert.Equal(status, response.Status);
            }
        }
        await rig.AssertServedAsync(1, handedOver: 6);
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("own")]
    public async Task AWebSocketUpgrade_IsHandedToKestrel_AndTunnelled(string mode)
    {
        await using var rig = await Rig.StartAsync(mode);
        var (socket, reader) = await rig.ConnectAsync();
        using var _ = socket;
        // The origin has no WebSocket endpoint: what matters is that the upgrade request reaches Kestrel's layer and is answered.
        await SendAsync(socket, "GET /bytes/5 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
        var response = await reader.ReadResponseAsync().WaitAsync(Wait);
        Assert.Equal(200, response.Status);
        await rig.AssertServedAsync(0, handedOver: 1);
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("own")]
    public async Task IdleKeptAliveConnections_HoldNoRequestObject(string mode)
    {
        await using var rig = await Rig.StartAsync(mode);
        var clients = new List<(Socket Socket, RawReader Reader)>();
        try
        {
            for (int i = 0; i < 20; i++)
            {
                var client = await rig.ConnectAsync();
                clients.Add(client);
                await SendAsync(client.Socket, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
                Assert.Equal(200, (await client.Reader.ReadResponseAsync().WaitAsync(Wait)).Status);
            }
            if (rig.Own)
                await Poll.UntilAsync(() => rig.Holder!.Application!.InUse == 0, "every request object went back to the pool while 20 connections stay open");
            await rig.AssertServedAsync(20);
            // Still alive: each connection serves another request.
            foreach (var (socket, reader) in clients)
            {
                await SendAsync(socket, "GET /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n");
                Assert.Equal(200, (await reader.ReadResponseAsync().WaitAsync(Wait)).Status);
            }
        }
        finally
        {
            foreach (var (socket, _) in clients) socket.Dispose();
        }
    }
}
