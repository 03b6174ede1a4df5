using System.Net;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Core.Forwarding;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Forwarding;

/// <summary>An upstream that answers before reading the request body (413, 401...) and closes.</summary>
public class EarlyResponseTests
{
    [Fact]
    public async Task UpstreamAnswering413BeforeReadingTheBody_ReachesTheClient_AndTheClientConnectionCloses()
    {
        await using var origin = new RejectingOrigin();
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        const long Length = 64L << 20; // far more than the socket buffers between client, proxy and origin hold

        var (socket, reader) = await bed.ConnectRawAsync();
        using (socket)
        {
            await ForwarderTestBed.SendAsync(socket, $"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {Length}\r\n\r\n");
            var uploading = Task.Run(async () =>
            {
                var chunk = new byte[64 * 1024];
                try { for (long sent = 0; sent < Length; sent += chunk.Length) await socket.SendAsync(chunk.AsMemory()); }
                catch (SocketException) { } // the proxy closed the connection after its answer
                catch (ObjectDisposedException) { }
            });
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(413, response.Status);
            Assert.Equal("too big!", Encoding.ASCII.GetString(response.Body));
            Assert.Equal("close", response.Headers["Connection"]);
            // The unread rest of the body makes the client connection unusable: the proxy ends it.
            var buffer = new byte[1024];
            var closed = socket.ReceiveAsync(buffer.AsMemory()).AsTask();
            Assert.True(await Task.WhenAny(closed, Task.Delay(TimeSpan.FromSeconds(30))) == closed, "the proxy did not close the client connection");
            try { Assert.Equal(0, await closed); } catch (SocketException) { } // FIN or RST, no further bytes
            socket.Shutdown(SocketShutdown.Both);
            await uploading.WaitAsync(TimeSpan.FromSeconds(30));
        }
        Assert.Equal(0, bed.Errors(UpstreamErrorKind.Send));
        Assert.Equal(0, bed.Errors(UpstreamErrorKind.ClosedBeforeHead));

        // The proxy keeps serving.
        using var client = new HttpClient();
        var next = await client.GetAsync(new Uri(new Uri(bed.Url), "/again"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, next.StatusCode);
    }

    /// <summary>
    /// The same early answer through the whole proxy, on both forwarders: ZcProxy's own (ZeroCopy on) and YARP's (ZeroCopy
    /// off, as for TLS and HTTP/2 clients), whose HttpClient reads a response only once it sent the whole body. The client
    /// gets the upstream's 413 and body, not a 502 of the proxy's making; its connection is closed (the rest of its body is
    /// unread), as nginx does; and the proxy keeps serving.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task UpstreamAnswering413MidUpload_ThroughTheProxy_ReachesTheClient_OnBothForwarders(bool zeroCopy)
    {
        await using var origin = new RejectingOrigin();
        using var dir = new ConfigDirectory();
        BalancingTestConfig.Write(dir, zeroCopy, BalancingTestConfig.Cluster("c", "RoundRobin", "", BalancingTestConfig.Destination("a", origin.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var (answer, closed) = await UploadAsync(proxy.Url + "/upload", 64L << 20); // far more than the socket buffers between client, proxy and origin hold
        Assert.StartsWith("HTTP/1.1 413", answer, StringComparison.Ordinal);
        Assert.EndsWith("too big!", answer, StringComparison.Ordinal);
        Assert.Contains("\r\nConnection: close\r\n", answer, StringComparison.OrdinalIgnoreCase);
        Assert.True(closed, "the proxy did not close the client connection after the early answer");
        PathAssert.ForwardedOn(proxy, zeroCopy);

        using var next = await BalancingTestConfig.Client.GetAsync(proxy.Url + "/again"); // the proxy keeps serving
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, next.StatusCode);
    }

    /// <summary>
    /// An https:// destination (YARP's path whatever ZeroCopy says) answering early over TLS: the upload's failed write is
    /// discarded above TLS and the answer read through it.
    /// </summary>
    [Fact]
    public async Task UpstreamOverTlsAnswering413MidUpload_ReachesTheClient()
    {
        using var certificate = TestCertificates.SelfSigned("localhost");
        await using var origin = new RejectingOrigin(certificate: certificate);
        using var dir = new ConfigDirectory();
        BalancingTestConfig.Write(dir, zeroCopy: true,
            $$""" "c": { "HttpClient": { "DangerousAcceptAnyServerCertificate": true }, "Destinations": { "a": { "Address": "{{origin.Url}}" } } } """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var (answer, closed) = await UploadAsync(proxy.Url + "/upload", 64L << 20);
        Assert.StartsWith("HTTP/1.1 413", answer, StringComparison.Ordinal);
        Assert.EndsWith("too big!", answer, StringComparison.Ordinal);
        Assert.True(closed, "the proxy did not close the client connection after the early answer");
        PathAssert.ForwardedOn(proxy, zeroCopy: false);
        Assert.Equal(1, origin.Answered);
    }

    /// <summary>An upstream that resets mid-upload without answering is still a 502 on both forwarders.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task UpstreamResettingMidUploadWithoutAnswer_ThroughTheProxy_Is502_OnBothForwarders(bool zeroCopy)
    {
        await using var origin = new RejectingOrigin(answer: false);
        using var dir = new ConfigDirectory();
        BalancingTestConfig.Write(dir, zeroCopy, BalancingTestConfig.Cluster("c", "RoundRobin", "", BalancingTestConfig.Destination("a", origin.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var (answer, _) = await UploadAsync(proxy.Url + "/upload", 64L << 20, awaitClose: false);
        Assert.StartsWith("HTTP/1.1 502", answer, StringComparison.Ordinal);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    /// <summary>
    /// POSTs to <paramref name="url"/> a body of <paramref name="length"/> bytes from a raw socket while reading the answer: returns what arrived
    /// up to the end of a 413's body (or of any other head), and (<paramref name="awaitClose"/>) whether the proxy then
    /// closed the connection.
    /// </summary>
    internal static async Task<(string Answer, bool Closed)> UploadAsync(string url, long length, bool awaitClose = true)
    {
        var uri = new Uri(url);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, uri.Port);
        await socket.SendAsync(Encoding.ASCII.GetBytes($"POST {uri.PathAndQuery} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n").AsMemory());
        var uploading = Task.Run(async () =>
        {
            var chunk = new byte[64 * 1024];
            try { for (long sent = 0; sent < length; sent += chunk.Length) await socket.SendAsync(chunk.AsMemory()); }
            catch (SocketException) { } // the proxy closed the connection after its answer
            catch (ObjectDisposedException) { }
        });
        var received = new List<byte>();
        var buffer = new byte[4096];
        bool closed = false;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            int n;
            try { n = await socket.ReceiveAsync(buffer.AsMemory(), timeout.Token); }
            catch (SocketException) { closed = true; break; } // a reset after the answer: what arrived before it counts
            if (n == 0) { closed = true; break; }
            received.AddRange(buffer.AsSpan(0, n).ToArray());
            var text = Encoding.ASCII.GetString(received.ToArray());
            if (text.Contains("\r\n\r\n", StringComparison.Ordinal) && (text.EndsWith("too big!", StringComparison.Ordinal) || !text.StartsWith("HTTP/1.1 413", StringComparison.Ordinal)))
                break;
        }
        if (!closed && awaitClose)
        {
            // The unread rest of the body makes the connection unusable: the proxy ends it (FIN or RST, no further bytes).
            try { closed = await socket.ReceiveAsync(buffer.AsMemory(), timeout.Token) == 0; }
            catch (SocketException) { closed = true; }
            catch (OperationCanceledException) { closed = false; }
        }
        socket.Shutdown(SocketShutdown.Both);
        await uploading.WaitAsync(TimeSpan.FromSeconds(30));
        return (Encoding.ASCII.GetString(received.ToArray()), closed);
    }
}
