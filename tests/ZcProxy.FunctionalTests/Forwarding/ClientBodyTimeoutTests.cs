using System.Net.Sockets;
using System.Text;
using ZcProxy.Core.Upstream;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// nginx's client_body_timeout (ZeroCopy.ClientBodyTimeout) for copied uploads, on both forwarders: a client that stops
/// sending its body gets 408 and its connection is closed (the spliced case: UploadSpliceTests). Before, Kestrel's
/// minimum data rate cut such a client after its 5 s grace with a 400, whatever the configured timeout.
/// </summary>
public sealed class ClientBodyTimeoutTests
{
    [Theory]
    [InlineData(true, "Content-Length: 1000")] // below SpliceThreshold: copied
    [InlineData(false, "Content-Length: 1000")]
    [InlineData(true, "Transfer-Encoding: chunked")]
    [InlineData(false, "Transfer-Encoding: chunked")]
    public async Task CopiedUploadThatStalls_Gets408_AndTheConnectionCloses(bool zeroCopy, string framing)
    {
        await using var origin = await UploadSpliceTests.StartOriginAsync();
        using var dir = new ConfigDirectory();
        // Shorter than Kestrel's 5 s grace: its data rate would cut the client later, with a 400. The test only waits for the 408.
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "{{origin.Url}}" } } } } }
            """, $$""" "AccessLog": { "Path": "off" }, "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}}, "ClientBodyTimeout": "1s" } """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var uri = new Uri(proxy.Url);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        var reader = new RawReader(socket);
        var first = framing.StartsWith("Content", StringComparison.Ordinal) ? new string('x', 100) : "64\r\n" + new string('x', 100) + "\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes($"POST /upload HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n{first}").AsMemory());
        // ... and then nothing more.
        var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(408, response.Status);
        Assert.Equal("close", response.Headers["Connection"]);
        Assert.True(await ClosedAsync(socket), "the connection stays open after the 408");
        PathAssert.ForwardedOn(proxy, zeroCopy);
        if (zeroCopy) Assert.Equal(0, proxy.Get<UpstreamConnectionPool>().IdleCount);
    }

    /// <summary>The proxy closed the connection: FIN, or a reset when request bytes were left unread in its socket.</summary>
    private static async Task<bool> ClosedAsync(Socket socket)
    {
        try { return await socket.ReceiveAsync(new byte[16].AsMemory()).AsTask().WaitAsync(TimeSpan.FromSeconds(30)) == 0; }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { return true; }
    }
}
