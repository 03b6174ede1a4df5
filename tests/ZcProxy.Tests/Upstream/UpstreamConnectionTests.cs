using System.Net;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Tests.Upstream;

public class UpstreamConnectionTests
{
    /// <summary>A connected pair on 127.0.0.1: (the proxy's side as an UpstreamConnection, the origin's raw socket).</summary>
    private static async Task<(UpstreamConnection Connection, Socket Origin)> PairAsync()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        var origin = await listener.AcceptAsync();
        return (new UpstreamConnection(client, "test"), origin);
    }

    private static Task<int> SendAsync(Socket s, string text) => s.SendAsync(Encoding.Latin1.GetBytes(text).AsMemory()).AsTask();

    [Fact]
    public async Task ReadHead_LeavesEveryBodyByteInTheKernel()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            // Head and body in one segment: only the head may be consumed.
            await SendAsync(origin, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
            var head = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None);
            Assert.Equal(10, head.ContentLength);
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available == 10, "the body to be readable in the kernel");
            var body = new byte[10];
            Assert.Equal(10, await connection.Socket.ReceiveAsync(body.AsMemory()));
            Assert.Equal("0123456789", Encoding.ASCII.GetString(body));
        }
    }

    [Fact]
    public async Task ReadHead_ForACopiedBody_PrefetchesAtMostContentLength_AndTheNextResponseIsIntact()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            // Two keep-alive responses in one segment: the first's prefetch must stop at its Content-Length, and a
            // body at or above the splice threshold must stay in the kernel.
            await SendAsync(origin, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
                + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nkernel");
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available > 0, "the responses to arrive");
            var first = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None, alwaysCopied: length => length < 6);
            Assert.Equal(5, first.ContentLength);
            Assert.Equal("first", Encoding.ASCII.GetString(connection.PrefetchedBody.Span));
            connection.ReleasePrefetchedBody();

            var second = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None, alwaysCopied: length => length < 6);
            Assert.Equal(BodyFraming.Chunked, second.Framing);
            var chunked = connection.PrefetchedBody.ToArray(); // chunked bodies are copied: what was peeked is taken, the decoder counts any excess
            Assert.StartsWith("3\r\nabc\r\n0\r\n\r\n", Encoding.ASCII.GetString(chunked));
            connection.ReleasePrefetchedBody();
        }
    }

    [Fact]
    public async Task ReadHead_ForASplicedBody_PrefetchesNothing()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            await SendAsync(origin, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nkernel");
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available > 0, "the response to arrive");
            var head = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None, alwaysCopied: length => length < 6);
            Assert.Equal(6, head.ContentLength);
            Assert.True(connection.PrefetchedBody.IsEmpty);
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available == 6, "the body to stay in the kernel");
        }
    }

    [Fact]
    public async Task ReadHead_ArrivingInPieces_AndAfterInterimResponses()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            var reading = connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None);
            foreach (var piece in new[] { "HTTP/1.1 100 Cont", "inue\r\n\r", "\nHTTP/1.1 200 OK\r\nContent-", "Length: 3\r\n\r", "\nabc" })
            {
                await SendAsync(origin, piece);
                await Task.Yield();
            }
            var head = await reading.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(200, head.StatusCode);
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available == 3, "exactly the body to remain");
        }
    }

    [Fact]
    public async Task ReadHead_Garbage_FailsWithoutWaitingForATerminator()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            await SendAsync(origin, "garbage without any line end");
            var e = await Assert.ThrowsAsync<UpstreamHeadException>(() => connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None));
            Assert.Equal(UpstreamHeadFailure.Malformed, e.Failure);
        }
    }

    [Fact]
    public async Task ReadHead_OversizedHead_IsMalformed()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            var limits = new ResponseHeadLimits { MaxHeadBytes = 1024 };
            _ = SendAsync(origin, "HTTP/1.1 200 OK\r\n" + string.Concat(Enumerable.Repeat("X-Pad: " + new string('p', 100) + "\r\n", 100)) + "\r\n");
            var e = await Assert.ThrowsAsync<UpstreamHeadException>(() => connection.ReadResponseHeadAsync(false, limits, CancellationToken.None));
            Assert.Equal(UpstreamHeadFailure.Malformed, e.Failure);
        }
    }

    [Fact]
    public async Task ClosedBeforeAnyByte_IsDistinguishedFromClosedMidHead()
    {
        var (connection, origin) = await PairAsync();
        using (connection)
        {
            origin.Dispose();
            var e = await Assert.ThrowsAsync<UpstreamHeadException>(() => connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None));
            Assert.Equal(UpstreamHeadFailure.Closed, e.Failure);
            Assert.Equal(0, e.BytesReceived);
            Assert.True(connection.LooksStale());
        }

        var (second, origin2) = await PairAsync();
        using (second)
        {
            await SendAsync(origin2, "HTTP/1.1 200 OK\r\n");
            origin2.Dispose();
            var e = await Assert.ThrowsAsync<UpstreamHeadException>(() => second.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None));
            Assert.Equal(UpstreamHeadFailure.Closed, e.Failure);
            Assert.True(e.BytesReceived > 0); // not safe to retry
        }
    }

    [Fact]
    public async Task LooksStale_OnlyWhenReadable()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            Assert.False(connection.LooksStale());
            await SendAsync(origin, "unsolicited");
            await Infrastructure.Poll.UntilAsync(() => connection.LooksStale(), "unsolicited bytes make the connection unusable");
        }
    }
}
