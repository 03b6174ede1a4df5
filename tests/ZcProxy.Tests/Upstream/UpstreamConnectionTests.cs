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
    public async Task ReadHead_IsOneRecv_TakingTheBodyBytesThatCameWithIt_TheRestStaysInTheKernel()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            const string Head = "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n";
            var body = new string('b', 20000);
            await SendAsync(origin, Head + body);
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available == Head.Length + body.Length, "the response to arrive");
            var head = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None);
            Assert.Equal(20000, head.ContentLength);
            // One read of HeadReadSize: the head and the body bytes behind it; the rest is left for splice.
            Assert.Equal(UpstreamConnection.HeadReadSize - Head.Length, connection.PrefetchedBody.Length);
            Assert.Equal(Head.Length + body.Length - UpstreamConnection.HeadReadSize, connection.Socket.Available);
            Assert.False(connection.OverRead);
        }
    }

    [Fact]
    public async Task ReadHead_AfterASplicedBody_TakesAboutTheHeadOnly_ThenIsGreedyAgain()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            const string Head = "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n";
            var body = new string('b', 20000);
            async Task<int> PrefetchedOfAsync(bool spliced)
            {
                await SendAsync(origin, Head + body);
                await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available == Head.Length + body.Length, "the response to arrive");
                await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None);
                int prefetched = connection.PrefetchedBody.Length;
                connection.ReleasePrefetchedBody();
                if (spliced) connection.BodyIsSpliced();
                var rest = new byte[connection.Socket.Available]; // what the splice would have moved
                for (int read = 0; read < rest.Length;) read += await connection.Socket.ReceiveAsync(rest.AsMemory(read));
                return prefetched;
            }

            Assert.Equal(UpstreamConnection.HeadReadSize - Head.Length, await PrefetchedOfAsync(spliced: true));
            // The body behind the head stays in the socket for the splice: at most the head's slack came along.
            Assert.InRange(await PrefetchedOfAsync(spliced: false), 1, 512 - Head.Length);
            Assert.Equal(UpstreamConnection.HeadReadSize - Head.Length, await PrefetchedOfAsync(spliced: false));
        }
    }

    [Fact]
    public async Task ReadHead_KeepsAtMostContentLength_AndMarksBytesPastTheResponse()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            await SendAsync(origin, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
            var first = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None);
            Assert.Equal(5, first.ContentLength);
            Assert.Equal("first", Encoding.ASCII.GetString(connection.PrefetchedBody.Span));
            Assert.False(connection.OverRead);
            connection.ReleasePrefetchedBody();

            // More than the response frames (an upstream that sends junk after its body): the junk is dropped and the
            // connection cannot carry another request.
            await SendAsync(origin, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecondHTTP/1.1 200 OK\r\n");
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available > 50, "the response to arrive");
            var second = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None);
            Assert.Equal("second", Encoding.ASCII.GetString(connection.PrefetchedBody.Span));
            Assert.True(connection.OverRead);
            connection.ReleasePrefetchedBody();
        }
    }

    [Fact]
    public async Task ReadHead_TheSameBytesAgain_AreTheSameHead_AnyOtherByteOrAHeadRequestParsesAnew()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            const string Head = "HTTP/1.1 200 OK\r\nDate: Thu, 03 Dec 2026 22:00:00 GMT\r\nContent-Length: 2\r\n\r\n";
            async Task<(ResponseHead Head, string Body)> ReadAsync(string response, bool requestWasHead = false)
            {
                await SendAsync(origin, response);
                await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available == response.Length, "the response to arrive");
                var head = await connection.ReadResponseHeadAsync(requestWasHead, ResponseHeadLimits.Default, CancellationToken.None);
                var body = Encoding.ASCII.GetString(connection.PrefetchedBody.Span);
                connection.ReleasePrefetchedBody();
                return (head, body);
            }

            var (first, _) = await ReadAsync(Head + "ab");
            var (again, body) = await ReadAsync(Head + "cd");
            Assert.Same(first, again); // byte for byte: no parse, nothing allocated
            Assert.Equal("cd", body);

            var (asHead, _) = await ReadAsync(Head, requestWasHead: true); // same bytes, but a HEAD request's response has no body
            Assert.NotSame(first, asHead);
            Assert.Equal(BodyFraming.None, asHead.Framing);

            var (later, _) = await ReadAsync(Head.Replace("22:00:00", "22:00:01") + "ef");
            Assert.NotSame(first, later);
            Assert.Equal("Thu, 03 Dec 2026 22:00:01 GMT", later.Headers[0].Value);
            Assert.Same(later, (await ReadAsync(Head.Replace("22:00:00", "22:00:01") + "gh")).Head);

            var (shorter, _) = await ReadAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nij");
            Assert.Equal(2, shorter.ContentLength);
            Assert.Single(shorter.Headers);
        }
    }

    [Fact]
    public async Task ReadHead_BodilessResponseWithBytesAfterIt_IsOverRead()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            await SendAsync(origin, "HTTP/1.1 204 No Content\r\n\r\njunk");
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available > 25, "the response to arrive");
            var head = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None);
            Assert.Equal(BodyFraming.None, head.Framing);
            Assert.True(connection.PrefetchedBody.IsEmpty);
            Assert.True(connection.OverRead);
        }
    }

    [Fact]
    public async Task ReadHead_ChunkedBody_KeepsEverythingThatCameWithTheHead()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            await SendAsync(origin, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available > 50, "the response to arrive");
            var head = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None);
            Assert.Equal(BodyFraming.Chunked, head.Framing);
            // The decoder finds the body's end (and counts anything past it).
            Assert.Equal("3\r\nabc\r\n0\r\n\r\n", Encoding.ASCII.GetString(connection.PrefetchedBody.Span));
            Assert.False(connection.OverRead);
        }
    }

    [Fact]
    public async Task ReadHead_ArrivingInPieces_AndAfterInterimResponses()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            var reading = connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None).AsTask();
            foreach (var piece in new[] { "HTTP/1.1 100 Cont", "inue\r\n\r", "\nHTTP/1.1 200 OK\r\nContent-", "Length: 3\r\n\r", "\nabc" })
            {
                await SendAsync(origin, piece);
                await Task.Yield();
            }
            var head = await reading.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(200, head.StatusCode);
            // Whatever of the body the last read took, plus what is still in the kernel, is exactly the body.
            int prefetched = connection.PrefetchedBody.Length;
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available == 3 - prefetched, "exactly the rest of the body to remain");
            Assert.Equal("abc"[..prefetched], Encoding.ASCII.GetString(connection.PrefetchedBody.Span));
        }
    }

    [Fact]
    public async Task ReadHead_InterimAndFinalHeadsInOneRead_AndAHeadLargerThanTheFirstRead()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            var padding = string.Concat(Enumerable.Range(0, 100).Select(i => $"X-Pad-{i}: {new string('p', 200)}\r\n")); // ~21 KiB of head
            await SendAsync(origin, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                + $"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n{padding}\r\nabc");
            var head = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(200, head.StatusCode);
            Assert.Equal(101, head.Headers.Count);
            int prefetched = connection.PrefetchedBody.Length;
            await Infrastructure.Poll.UntilAsync(() => connection.Socket.Available == 3 - prefetched, "exactly the rest of the body to remain");
            Assert.Equal("abc"[..prefetched], Encoding.ASCII.GetString(connection.PrefetchedBody.Span));
            Assert.False(connection.OverRead);
        }
    }

    [Fact]
    public async Task ReadHead_Garbage_FailsWithoutWaitingForATerminator()
    {
        var (connection, origin) = await PairAsync();
        using (connection) using (origin)
        {
            await SendAsync(origin, "garbage without any line end");
            var e = await Assert.ThrowsAsync<UpstreamHeadException>(() => connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None).AsTask());
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
            var e = await Assert.ThrowsAsync<UpstreamHeadException>(() => connection.ReadResponseHeadAsync(false, limits, CancellationToken.None).AsTask());
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
            var e = await Assert.ThrowsAsync<UpstreamHeadException>(() => connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None).AsTask());
            Assert.Equal(UpstreamHeadFailure.Closed, e.Failure);
            Assert.Equal(0, e.BytesReceived);
            Assert.True(connection.LooksStale());
        }

        var (second, origin2) = await PairAsync();
        using (second)
        {
            await SendAsync(origin2, "HTTP/1.1 200 OK\r\n");
            origin2.Dispose();
            var e = await Assert.ThrowsAsync<UpstreamHeadException>(() => second.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None).AsTask());
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
