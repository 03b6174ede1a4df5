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
    /// <summary>Reads each request's head only, answers 413 and closes with the body unread.</summary>
    private sealed class RejectingOrigin : IAsyncDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private int _answered;

        public RejectingOrigin()
        {
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(16);
            _ = AcceptLoopAsync();
        }

        public string Url => $"http://{_listener.LocalEndPoint}/";
        public int Answered => Volatile.Read(ref _answered);

        private async Task AcceptLoopAsync()
        {
            while (true)
            {
                Socket socket;
                try { socket = await _listener.AcceptAsync(); } catch { return; }
                _ = Task.Run(async () =>
                {
                    using (socket)
                    {
                        var buffer = new byte[16 * 1024];
                        var head = new List<byte>();
                        while (head.Count < 64 * 1024)
                        {
                            int n = await socket.ReceiveAsync(buffer.AsMemory(0, 1)); // byte by byte: leave the body unread
                            if (n == 0) return;
                            head.Add(buffer[0]);
                            if (head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n') break;
                        }
                        await socket.SendAsync(Encoding.ASCII.GetBytes("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!").AsMemory());
                        Interlocked.Increment(ref _answered);
                    } // closed with the request body unread
                });
            }
        }

        public ValueTask DisposeAsync()
        {
            _listener.Dispose();
            return ValueTask.CompletedTask;
        }
    }

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
    /// off, as for TLS and HTTP/2 clients), whose HttpClient reads the response while it still sends the body. The client
    /// gets the upstream's 413 and body, not a 502 of the proxy's making, and the proxy keeps serving.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false, Skip = "Known defect (issue 13): on YARP's forwarder the origin's close with the body unread resets the upload, HttpClient fails the send and the client gets 502 instead of the 413 (seen 2026-12-03)")]
    public async Task UpstreamAnswering413MidUpload_ThroughTheProxy_ReachesTheClient_OnBothForwarders(bool zeroCopy)
    {
        await using var origin = new RejectingOrigin();
        using var dir = new ConfigDirectory();
        BalancingTestConfig.Write(dir, zeroCopy, BalancingTestConfig.Cluster("c", "RoundRobin", "", BalancingTestConfig.Destination("a", origin.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        const long Length = 64L << 20;

        var uri = new Uri(proxy.Url);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, uri.Port);
        await socket.SendAsync(Encoding.ASCII.GetBytes($"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {Length}\r\n\r\n").AsMemory());
        var uploading = Task.Run(async () =>
        {
            var chunk = new byte[64 * 1024];
            try { for (long sent = 0; sent < Length; sent += chunk.Length) await socket.SendAsync(chunk.AsMemory()); }
            catch (SocketException) { } // the proxy closed the connection after its answer
            catch (ObjectDisposedException) { }
        });
        var received = new List<byte>();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            int n;
            try { n = await socket.ReceiveAsync(buffer.AsMemory(), timeout.Token); }
            catch (SocketException) { break; } // a reset after the answer: what arrived before it counts
            if (n == 0) break;
            received.AddRange(buffer.AsSpan(0, n).ToArray());
            var text = Encoding.ASCII.GetString(received.ToArray());
            if (text.Contains("\r\n\r\n", StringComparison.Ordinal) && (text.EndsWith("too big!", StringComparison.Ordinal) || !text.StartsWith("HTTP/1.1 413", StringComparison.Ordinal)))
                break;
        }
        var answer = Encoding.ASCII.GetString(received.ToArray());
        Assert.StartsWith("HTTP/1.1 413", answer, StringComparison.Ordinal);
        Assert.EndsWith("too big!", answer, StringComparison.Ordinal);
        socket.Shutdown(SocketShutdown.Both);
        await uploading.WaitAsync(TimeSpan.FromSeconds(30));
        PathAssert.ForwardedOn(proxy, zeroCopy);

        using var next = await BalancingTestConfig.Client.GetAsync(proxy.Url + "/again"); // the proxy keeps serving
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, next.StatusCode);
    }
}
