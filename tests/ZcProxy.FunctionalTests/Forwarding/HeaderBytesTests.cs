namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// Header values are bytes (RFC 9110 obs-text allows any byte ≥ 0x80): the proxy passes them through unchanged,
/// as nginx and HAProxy do, in both directions, on both forwarders, and through the cache. Strings in these tests
/// hold one char per byte, so "\u00C3\u00A9" is the UTF-8 encoding of é and "\u00E9" its Latin-1 byte.
/// </summary>
public class HeaderBytesTests
{
    private const string Utf8Name = "r\u00C3\u00A9sum\u00C3\u00A9.pdf";          // résumé.pdf in UTF-8
    private const string ContentDisposition = "attachment; filename=\"" + Utf8Name + "\"";
    private const string Latin1ETag = "\"\u00E9t\u00E9-\u00FF\"";                  // single bytes E9, FF

    private static Task<bool> RespondWithObsText(RawRequest request, System.Net.Sockets.Socket socket)
        => Respond(socket, "Cache-Control: max-age=60\r\n");

    private static async Task<bool> Respond(System.Net.Sockets.Socket socket, string extraHeaders)
    {
        await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Disposition: " + ContentDisposition + "\r\nETag: " + Latin1ETag
            + "\r\n" + extraHeaders + "Content-Length: 2\r\n\r\nok");
        return true;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ObsTextInResponseHeaders_ReachesTheClientByteExact(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, (_, socket) => Respond(socket, ""));
        var (status, headers, body) = await rig.ExchangeAsync("GET /file HTTP/1.1\r\nHost: x\r\n\r\n");

        Assert.Equal(200, status);
        Assert.Equal(ContentDisposition, headers["Content-Disposition"]);
        Assert.Equal(Latin1ETag, headers["ETag"]);
        Assert.Equal("ok"u8.ToArray(), body);
        rig.AssertForwardingPath();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task NonAsciiRequestHeaders_ReachTheUpstreamByteExact(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, WireRig.Ok);
        var (status, _, _) = await rig.ExchangeAsync(
            "GET /q HTTP/1.1\r\nHost: x\r\nX-Utf8: caf\u00C3\u00A9\r\nX-Latin1: caf\u00E9\r\nCookie: n=\u00C3\u00BC\r\n\r\n");

        Assert.Equal(200, status);
        var received = Assert.Single(rig.Received);
        Assert.Equal("caf\u00C3\u00A9", received.Headers["X-Utf8"]);
        Assert.Equal("caf\u00E9", received.Headers["X-Latin1"]);
        Assert.Equal("n=\u00C3\u00BC", received.Headers["Cookie"]);
        rig.AssertForwardingPath();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ObsTextHeaders_AreStoredAndServedFromTheCacheByteExact(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, RespondWithObsText,
            routeExtra: """ "Metadata": { "Cache": "on" } """,
            extraSections: """ "Cache": { "Path": "cache", "MaxSize": "64MiB" } """);

        foreach (var expected in new[] { "MISS", "HIT" })
        {
            var (status, headers, body) = await rig.ExchangeAsync("GET /cached HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.Equal(200, status);
            Assert.Equal(expected, headers["X-Cache-Status"]);
            Assert.Equal(ContentDisposition, headers["Content-Disposition"]);
            Assert.Equal(Latin1ETag, headers["ETag"]);
            Assert.Equal("ok"u8.ToArray(), body);
        }
        Assert.Single(rig.Received);
        rig.AssertForwardingPath();
    }
}
