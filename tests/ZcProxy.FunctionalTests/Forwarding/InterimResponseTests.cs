using System.Net.Sockets;
using System.Text;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// Interim (1xx) responses: forwarded to HTTP/1.1 clients before the final response on the zero-copy path (101
/// excepted, and 100, which Kestrel answers itself for the client's Expect), never to HTTP/1.0 clients (RFC 9110
/// §15.2), never stored. YARP's path cannot forward them: SocketsHttpHandler consumes 1xx responses and has no
/// callback for them (.NET 10), and Kestrel has no API to send one.
/// </summary>
public class InterimResponseTests
{
    private const string Interims = "HTTP/1.1 100 Continue\r\n\r\n"
        + "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n"
        + "HTTP/1.1 102 Processing\r\n\r\n";

    private static async Task<bool> RespondWithInterims(RawRequest request, Socket socket)
    {
        await RawSocketOrigin.SendAsync(socket, Interims + "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nfinal");
        return true;
    }

    private static async Task<(Socket, RawReader)> SendAsync(WireRig rig, string request)
    {
        var (socket, reader) = await rig.ConnectAsync();
        await socket.SendAsync(Encoding.Latin1.GetBytes(request).AsMemory());
        return (socket, reader);
    }

    private static async Task<(int Status, Dictionary<string, string> Headers, byte[] Body)> ReadAsync(RawReader reader, bool interim = false)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await reader.ReadResponseAsync(noBody: interim, timeout.Token);
    }

    [Fact]
    public async Task EarlyHints_ReachAnHttp11ClientBeforeTheFinalResponse()
    {
        await using var rig = await WireRig.StartAsync(zeroCopy: true, RespondWithInterims);
        var (socket, reader) = await SendAsync(rig, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
        using (socket)
        {
            var hints = await ReadAsync(reader, interim: true);
            Assert.Equal(103, hints.Status);
            Assert.Equal("</a.css>; rel=preload", hints.Headers["Link"]);
            Assert.False(hints.Headers.ContainsKey("X-Hop"), "a field named in Connection was forwarded");
            Assert.Equal(102, (await ReadAsync(reader, interim: true)).Status);
            var final = await ReadAsync(reader);
            Assert.Equal(200, final.Status);
            Assert.Equal("final"u8.ToArray(), final.Body);

            // The connection goes on: the next response's interims and final response follow in order.
            await socket.SendAsync("GET /again HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray().AsMemory());
            Assert.Equal(103, (await ReadAsync(reader, interim: true)).Status);
            Assert.Equal(102, (await ReadAsync(reader, interim: true)).Status);
            Assert.Equal(200, (await ReadAsync(reader)).Status);
        }
        Assert.Equal(1, rig.Origin.Connections);
        rig.AssertForwardingPath();
    }

    [Fact]
    public async Task InterimResponses_AreNotSentToHttp10Clients()
    {
        await using var rig = await WireRig.StartAsync(zeroCopy: true, RespondWithInterims);
        var (socket, reader) = await SendAsync(rig, "GET /page HTTP/1.0\r\nHost: x\r\n\r\n");
        using (socket)
        {
            var first = await ReadAsync(reader);
            Assert.Equal(200, first.Status);
            Assert.Equal("final"u8.ToArray(), first.Body);
        }
        rig.AssertForwardingPath();
    }

    [Fact]
    public async Task InterimResponses_AreForwardedOnAMiss_AndNeverServedFromTheCache()
    {
        await using var rig = await WireRig.StartAsync(zeroCopy: true, RespondWithInterims,
            routeExtra: """ "Metadata": { "Cache": "on" } """,
            extraSections: """ "Cache": { "Path": "cache", "MaxSize": "64MiB" } """);
        var (socket, reader) = await SendAsync(rig, "GET /cached HTTP/1.1\r\nHost: x\r\n\r\n");
        using (socket)
        {
            Assert.Equal(103, (await ReadAsync(reader, interim: true)).Status);
            Assert.Equal(102, (await ReadAsync(reader, interim: true)).Status);
            var miss = await ReadAsync(reader);
            Assert.Equal("MISS", miss.Headers["X-Cache-Status"]);

            await socket.SendAsync("GET /cached HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray().AsMemory());
            var hit = await ReadAsync(reader);
            Assert.Equal(200, hit.Status); // straight to the final response
            Assert.Equal("HIT", hit.Headers["X-Cache-Status"]);
            Assert.False(hit.Headers.ContainsKey("Link"), "the 103's field was stored with the final response");
        }
        Assert.Single(rig.Received);
        rig.AssertForwardingPath();
    }

    /// <summary>What README says of YARP's path: the 103 does not reach the client, the final response does.</summary>
    [Fact]
    public async Task OnYarpsPath_InterimResponsesAreDropped_AndTheFinalResponseArrives()
    {
        await using var rig = await WireRig.StartAsync(zeroCopy: false, RespondWithInterims);
        var (socket, reader) = await SendAsync(rig, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
        using (socket)
        {
            var first = await ReadAsync(reader);
            Assert.Equal(200, first.Status);
            Assert.Equal("final"u8.ToArray(), first.Body);
        }
        rig.AssertForwardingPath();
    }

    /// <summary>
    /// Kestrel writes its own "100 Continue" when the forwarder starts reading the request body, while the upstream's
    /// 103 may arrive at the same moment: each head reaches the client whole, and the body and final response follow.
    /// </summary>
    [Fact]
    public async Task EarlyHints_AndKestrels100Continue_ReachTheClientWhole()
    {
        // An origin that answers 103 as soon as it has the head, before it reads the body.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        listener.Listen(8);
        var origin = Task.Run(async () =>
        {
            using var upstream = await listener.AcceptAsync();
            var received = new List<byte>();
            var buffer = new byte[4096];
            while (!Encoding.Latin1.GetString(received.ToArray()).Contains("\r\n\r\n", StringComparison.Ordinal))
                received.AddRange(buffer.AsSpan(0, await upstream.ReceiveAsync(buffer)).ToArray());
            await upstream.SendAsync("HTTP/1.1 103 Early Hints\r\nLink: </b.js>; rel=preload\r\n\r\n"u8.ToArray());
            while (!Encoding.Latin1.GetString(received.ToArray()).EndsWith("hello", StringComparison.Ordinal)) // the body, by its Content-Length
            {
                int n = await upstream.ReceiveAsync(buffer);
                if (n == 0) break;
                received.AddRange(buffer.AsSpan(0, n).ToArray());
            }
            await upstream.SendAsync("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone"u8.ToArray());
            return Encoding.Latin1.GetString(received.ToArray());
        });
        var url = $"http://{listener.LocalEndPoint}/";

        await using var rig = await WireRig.StartAsync(zeroCopy: true, WireRig.Ok, destinationUrl: url);
        var (socket, reader) = await SendAsync(rig, "POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        using (socket)
        {
            var interims = new List<int>();
            while (interims.Count < 2)
            {
                var interim = await ReadAsync(reader, interim: true);
                interims.Add(interim.Status);
                if (interim.Status == 100) await socket.SendAsync("hello"u8.ToArray().AsMemory());
            }
            interims.Sort();
            Assert.Equal("100,103", string.Join(",", interims));
            var final = await ReadAsync(reader);
            Assert.Equal(200, final.Status);
            Assert.Equal("done"u8.ToArray(), final.Body);
        }
        Assert.EndsWith("hello", await origin, StringComparison.Ordinal);
        rig.AssertForwardingPath();
    }
}
