using System.Net;
using System.Net.Sockets;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Forwarding;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Forwarding;

public class ZeroCopyForwarderProtocolTests
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromSeconds(5) }) { Timeout = TimeSpan.FromSeconds(60) };

    [Fact]
    public async Task InterimResponses_BeforeTheFinalOne_LeaveTheConnectionReusable()
    {
        await using var origin = RawSocketOrigin.Start(async (_, socket) =>
        {
            await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal");
            return true;
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        Assert.Equal("final", await Client.GetStringAsync($"{bed.Url}/i"));
        Assert.Equal("final", await Client.GetStringAsync($"{bed.Url}/i")); // and the connection was reusable
        Assert.Equal(1, origin.Connections);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\njunk", "ok")]
    [InlineData("HTTP/1.1 204 No Content\r\n\r\njunk", "")]
    public async Task BytesPastTheResponse_ReadWithItsHead_AreDropped_AndTheConnectionIsNotReused(string response, string body)
    {
        // One write: the head read's one recv takes the response and whatever the upstream sent after it.
        await using var origin = RawSocketOrigin.Start(async (_, socket) =>
        {
            await RawSocketOrigin.SendAsync(socket, response);
            return true;
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        for (int i = 1; i <= 2; i++)
        {
            Assert.Equal(body, await Client.GetStringAsync($"{bed.Url}/j"));
            Assert.Equal(i, origin.Connections);
        }
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nX-Kind: close-delimited\r\n\r\n")]
    [InlineData("HTTP/1.0 200 OK\r\nX-Kind: http/1.0\r\n\r\n")]
    public async Task CloseDelimitedBody_IsCopiedToTheEnd_AndTheConnectionNotReused(string head)
    {
        await using var origin = RawSocketOrigin.Start(async (_, socket) =>
        {
            await RawSocketOrigin.SendAsync(socket, head);
            await socket.SendAsync(new byte[100_000].AsMemory());
            return false; // the close ends the body
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        for (int i = 1; i <= 2; i++)
        {
            var body = await Client.GetByteArrayAsync($"{bed.Url}/c");
            Assert.Equal(100_000, body.Length);
            Assert.Equal(i, origin.Connections);
        }
        Assert.Equal(200_000, bed.Copied);
    }

    [Fact]
    public async Task MalformedChunk_AfterTheHead_AbortsTheClient()
    {
        await using var origin = RawSocketOrigin.Start(async (_, socket) =>
        {
            await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\nbad\r\n0\r\n\r\n");
            return true;
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        var (socket, reader) = await bed.ConnectRawAsync();
        using (socket)
        {
            await ForwarderTestBed.SendAsync(socket, "GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n");
            await ForwarderTestBed.AssertAbortedAsync(reader);
        }
        await Poll.UntilAsync(() => bed.Errors(UpstreamErrorKind.MalformedBody) == 1, "the bad chunk to be counted");
        Assert.Equal(1, origin.Connections);
    }

    [Fact]
    public async Task UpstreamSilentMidBody_TimesOutAndAbortsTheClient()
    {
        await using var origin = RawSocketOrigin.Start(async (_, socket) =>
        {
            await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly-this");
            try { while (await socket.ReceiveAsync(new byte[64].AsMemory()) > 0) { } } catch (SocketException) { }
            return false;
        });
        // The body idle timeout alone is short: a cluster ActivityTimeout would time the head out too when a loaded
        // machine delays the origin's answer, and the test would see a 504 instead of the mid-body abort it is about.
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url, zeroCopy: "\"BodyIdleTimeout\": \"300ms\"");
        var (socket, reader) = await bed.ConnectRawAsync();
        using (socket)
        {
            await ForwarderTestBed.SendAsync(socket, "GET /stall HTTP/1.1\r\nHost: x\r\n\r\n");
            await ForwarderTestBed.AssertAbortedAsync(reader);
        }
        // The client connection is aborted first (nothing truncated may look complete), then the failure is counted.
        await Poll.UntilAsync(() => bed.Errors(UpstreamErrorKind.BodyTimeout) == 1, "the body timeout to be counted");
        await Poll.UntilAsync(() => origin.ClosedConnections == 1, "the stalled upstream connection to be closed");
    }

    [Fact]
    public async Task UpgradeRequests_AreForwardedByZcProxy_AndADeclinedUpgradeAnswersNormally()
    {
        await using var origin = await TestOrigin.StartAsync("O");
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        var (socket, reader) = await bed.ConnectRawAsync();
        using (socket)
        {
            await ForwarderTestBed.SendAsync(socket, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: something\r\n\r\n");
            Assert.Equal(200, (await reader.ReadResponseAsync()).Status); // the origin declines the upgrade and answers normally
            await ForwarderTestBed.SendAsync(socket, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.Equal(200, (await reader.ReadResponseAsync()).Status); // and the connection goes on as HTTP
        }
        Assert.Equal(0, bed.Forwarding.Yarp.Value);
        Assert.Equal(2, bed.Forwarding.ZeroCopy.Value);
    }

    [Fact]
    public async Task ConnectFailures_FeedYarpsPassiveHealthCheck()
    {
        using var unused = new ReservedPort(); // refuses, and no other test's server takes the port meanwhile
        var url = $"http://127.0.0.1:{unused.Port}/";
        await using var bed = await ForwarderTestBed.StartAsync(url, clusterExtra: """
            "HealthCheck": { "Passive": { "Enabled": true, "Policy": "TransportFailureRate", "ReactivationPeriod": "00:05:00" } }
            """);
        var state = bed.Proxy.Get<IProxyStateLookup>();
        Assert.True(state.TryGetCluster("c", out var cluster));
        var destination = cluster.Destinations["d"];
        for (int i = 0; i < 40 && destination.Health.Passive != DestinationHealth.Unhealthy; i++)
            Assert.Equal(HttpStatusCode.BadGateway, (await Client.GetAsync($"{bed.Url}/x")).StatusCode);
        Assert.Equal(DestinationHealth.Unhealthy, destination.Health.Passive);
        Assert.True(bed.Forwarding.ZeroCopy.Value > 0);
    }
}
