namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// RFC 9110 §7.6.1: a header field named in the Connection header is hop-by-hop, and a proxy removes it before
/// forwarding the message, in both directions (what Go's ReverseProxy and Envoy do). Framing fields stay.
/// </summary>
public class ConnectionOptionsTests
{
    private static async Task<bool> RespondWithHopHeaders(RawRequest request, System.Net.Sockets.Socket socket)
    {
        await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop, x-other-hop, Content-Length\r\n"
            + "X-Hop: secret\r\nX-Other-Hop: secret too\r\nX-Kept: yes\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello");
        return true;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task HeadersNamedInTheUpstreamConnectionHeader_AreNotForwardedToTheClient(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, RespondWithHopHeaders);
        for (int i = 0; i < 2; i++) // and the upstream connection stays reusable
        {
            var (status, headers, body) = await rig.ExchangeAsync("GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.Equal(200, status);
            Assert.False(headers.ContainsKey("X-Hop"), "X-Hop was forwarded");
            Assert.False(headers.ContainsKey("X-Other-Hop"), "X-Other-Hop was forwarded");
            Assert.Equal("yes", headers["X-Kept"]);
            Assert.Equal("hello"u8.ToArray(), body); // Content-Length, a framing field, is never dropped
        }
        Assert.Equal(1, rig.Origin.Connections);
        rig.AssertForwardingPath();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task HeadersNamedInTheClientConnectionHeader_AreNotForwardedToTheUpstream(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, WireRig.Ok);
        var (status, _, _) = await rig.ExchangeAsync("POST /q HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Hop, Content-Length\r\n"
            + "X-Hop: secret\r\nX-Kept: yes\r\nContent-Length: 4\r\n\r\nbody");

        Assert.Equal(200, status);
        var received = Assert.Single(rig.Received);
        Assert.False(received.Headers.ContainsKey("X-Hop"), "X-Hop was forwarded");
        Assert.Equal("yes", received.Headers["X-Kept"]);
        Assert.Equal("body"u8.ToArray(), received.Body);
        rig.AssertForwardingPath();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task HeadersNamedInTheUpstreamConnectionHeader_AreNeitherStoredNorServedFromTheCache(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, RespondWithHopHeaders,
            routeExtra: """ "Metadata": { "Cache": "on" } """,
            extraSections: """ "Cache": { "Path": "cache", "MaxSize": "64MiB" } """);
        foreach (var expected in new[] { "MISS", "HIT" })
        {
            var (status, headers, body) = await rig.ExchangeAsync("GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.Equal(200, status);
            Assert.Equal(expected, headers["X-Cache-Status"]);
            Assert.False(headers.ContainsKey("X-Hop"), $"X-Hop was served on a {expected}");
            Assert.Equal("yes", headers["X-Kept"]);
            Assert.Equal("hello"u8.ToArray(), body);
        }
        Assert.Single(rig.Received);
        rig.AssertForwardingPath();
    }
}
