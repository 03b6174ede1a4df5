using System.Net;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Core.Forwarding;
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
}
