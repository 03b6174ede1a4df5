using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Upstream;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Forwarding;

public class ZeroCopyForwarderFaultTests
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromSeconds(5) }) { Timeout = TimeSpan.FromSeconds(60) };

    /// <summary>Waits until the proxy closes the connection, then lets the origin close it too.</summary>
    private static async Task<bool> HoldUntilPeerClosesAsync(Socket socket)
    {
        try { while (await socket.ReceiveAsync(new byte[256].AsMemory()) > 0) { } } catch (SocketException) { }
        return false;
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("SSH-2.0-OpenSSH_9.6\r\n")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")]
    public async Task MalformedHead_Is502_AndTheConnectionIsDiscarded(string answer)
    {
        await using var origin = RawSocketOrigin.Start(async (_, socket) =>
        {
            await RawSocketOrigin.SendAsync(socket, answer);
            return true; // the origin would keep the connection: the proxy must not
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        for (int i = 1; i <= 2; i++)
        {
            using var response = await Client.GetAsync($"{bed.Url}/bad");
            Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
            Assert.Contains("sent an invalid response", await response.Content.ReadAsStringAsync()); // UpstreamTimingStep saw ResponseHeaders
            Assert.Equal(i, origin.Connections);
        }
        Assert.Equal(2, bed.Errors(UpstreamErrorKind.MalformedHead));
        Assert.Equal(0, bed.Proxy.Get<UpstreamConnectionPool>().IdleCount);
    }

    [Fact]
    public async Task SilentUpstream_Is504_AfterTheClusterActivityTimeout()
    {
        await using var origin = RawSocketOrigin.Start((_, socket) => HoldUntilPeerClosesAsync(socket));
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url, clusterExtra: """ "HttpRequest": { "ActivityTimeout": "00:00:00.300" } """);
        var clock = Stopwatch.StartNew();
        using var response = await Client.GetAsync($"{bed.Url}/slow");
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Contains("timed out", await response.Content.ReadAsStringAsync());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "the cluster's ActivityTimeout, not the 60 s default, applied");
        Assert.Equal(1, bed.Errors(UpstreamErrorKind.HeadTimeout));
        await Poll.UntilAsync(() => origin.ClosedConnections == 1, "the timed-out upstream connection to be closed");
    }

    [Fact]
    public async Task ConnectFailure_Is502()
    {
        using var unused = new ReservedPort(); // refuses, and no other test's server takes the port meanwhile
        var url = $"http://127.0.0.1:{unused.Port}/";
        await using var bed = await ForwarderTestBed.StartAsync(url);
        using var response = await Client.GetAsync($"{bed.Url}/x");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("could not connect", await response.Content.ReadAsStringAsync());
        Assert.Equal(1, bed.Errors(UpstreamErrorKind.Connect));
    }

    [Theory]
    [InlineData(50_000, 10_000, true)] // copied
    public async Task UpstreamResetMidBody_AbortsTheClient(int promised, int sent, bool reset)
    {
        await using var origin = RawSocketOrigin.Start(async (_, socket) =>
        {
            await RawSocketOrigin.SendAsync(socket, $"HTTP/1.1 200 OK\r\nContent-Length: {promised}\r\n\r\n");
            await socket.SendAsync(new byte[sent].AsMemory());
            if (reset) RawSocketOrigin.Reset(socket);
            return false;
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        var (socket, reader) = await bed.ConnectRawAsync();
        using (socket)
        {
            await ForwarderTestBed.SendAsync(socket, "GET /reset HTTP/1.1\r\nHost: x\r\n\r\n");
            // The client must never see the truncated body as complete: the connection ends before Content-Length bytes.
            await ForwarderTestBed.AssertAbortedAsync(reader);
        }
        await Poll.UntilAsync(() => bed.Errors(UpstreamErrorKind.BodyReset) == 1, "the reset to be counted");
        Assert.Equal(0, bed.Proxy.Get<UpstreamConnectionPool>().IdleCount);

        // The proxy stays healthy.
        await using var good = await TestOrigin.StartAsync("G");
        await using var bed2 = await ForwarderTestBed.StartAsync(good.Url);
        Assert.Equal("G GET /after", await Client.GetStringAsync($"{bed2.Url}/after"));
    }

    /// <summary>The same faults over the splice threshold (the transport aborts the client itself).</summary>
    [Theory]
    [InlineData(4_000_000, 300_000, true)]
    [InlineData(4_000_000, 300_000, false)]
    public Task UpstreamEndsEarlyDuringSplice_AbortsTheClient(int promised, int sent, bool reset)
        => UpstreamResetMidBody_AbortsTheClient(promised, sent, reset);

    [Fact]
    public async Task StalePooledConnection_IsDetectedBeforeReuse()
    {
        await using var origin = RawSocketOrigin.Start(async (_, socket) =>
        {
            // Says keep-alive, then closes anyway (as an upstream's idle timeout would).
            await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            return false;
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        Assert.Equal("ok", await Client.GetStringAsync($"{bed.Url}/1"));
        await Poll.UntilAsync(() => origin.ClosedConnections == 1, "the origin to close its side");
        Assert.Equal("ok", await Client.GetStringAsync($"{bed.Url}/2"));
        Assert.Equal(2, origin.Connections);
        Assert.Equal(1, bed.Metrics.CounterValue("zcproxy_upstream_connections_stale_total"));
        Assert.Equal(0, bed.Forwarding.Retries.Value);
    }

    [Fact]
    public async Task ReusedConnectionClosedBeforeAnswering_GetIsRetriedOnce_PostIsNot()
    {
        await using var origin = RawSocketOrigin.Start(async (request, socket) =>
        {
            // Every second request on a connection finds it closed: the race between reuse and the upstream's idle close.
            if (request.RequestOnConnection == 2) return false;
            await RawSocketOrigin.SendAsync(socket, $"HTTP/1.1 200 OK\r\nContent-Length: {request.Body.Length}\r\n\r\n");
            await socket.SendAsync(request.Body.AsMemory());
            return true;
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        Assert.Equal("", await Client.GetStringAsync($"{bed.Url}/1"));
        Assert.Equal("", await Client.GetStringAsync($"{bed.Url}/2")); // reused, closed, retried on a fresh connection
        Assert.Equal(1, bed.Forwarding.Retries.Value);
        Assert.Equal(1, bed.Metrics.CounterValue("zcproxy_upstream_retries_total", ("reason", "stale_connection")));
        Assert.Equal(2, origin.Connections);

        using var post = await Client.PostAsync($"{bed.Url}/3", new ByteArrayContent([1, 2, 3]));
        Assert.Equal(HttpStatusCode.BadGateway, post.StatusCode); // a request with a body is never replayed
        Assert.Equal(1, bed.Forwarding.Retries.Value);
        Assert.Equal(1, bed.Errors(UpstreamErrorKind.ClosedBeforeHead));
    }
}
