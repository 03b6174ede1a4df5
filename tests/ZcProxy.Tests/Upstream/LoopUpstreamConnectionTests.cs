using System.Net;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Tests.Upstream;

/// <summary>Upstream connections native to an event loop: non-blocking connect, direct syscalls, edge-triggered waits.</summary>
public sealed class LoopUpstreamConnectionTests
{
    [Fact]
    public async Task CloseDelimitedBody_IsReadToEof_OnTheLoop()
    {
        using var loop = new EventLoop(0);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var connecting = UpstreamConnection.ConnectOnLoopAsync(loop, (IPEndPoint)listener.LocalEndPoint!, "test", CancellationToken.None);
        using var origin = await listener.AcceptAsync();
        using var connection = await connecting.WaitAsync(TimeSpan.FromSeconds(10));
        await connection.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), CancellationToken.None);
        var request = new byte[100];
        Assert.True(await origin.ReceiveAsync(request) > 0);
        await origin.SendAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\n\r\nhello"));
        var head = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(BodyFraming.CloseDelimited, head.Framing);
        // The greedy head read may have taken the body with the head; the stream has the rest.
        var text = Encoding.ASCII.GetString(connection.PrefetchedBody.Span);
        var buffer = new byte[100];
        while (text.Length < 5) text += Encoding.ASCII.GetString(buffer, 0, await connection.Stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("hello", text);
        // Drained after that short read: the next read waits for the edge of the next bytes, then the FIN's.
        await origin.SendAsync(Encoding.ASCII.GetBytes(" world"));
        origin.Shutdown(SocketShutdown.Send);
        int n = await connection.Stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(" world", Encoding.ASCII.GetString(buffer, 0, n));
        Assert.Equal(0, await connection.Stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task LargeCloseDelimitedBody_SentWithTheClose_IsReadToEof(bool reset)
    {
        using var loop = new EventLoop(0);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var connecting = UpstreamConnection.ConnectOnLoopAsync(loop, (IPEndPoint)listener.LocalEndPoint!, "test", CancellationToken.None);
        var origin = await listener.AcceptAsync();
        using var connection = await connecting.WaitAsync(TimeSpan.FromSeconds(10));
        await connection.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), CancellationToken.None);
        Assert.True(await origin.ReceiveAsync(new byte[100]) > 0);
        await origin.SendAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\n\r\n"));
        await origin.SendAsync(new byte[100_000]);
        if (reset) origin.LingerState = new LingerOption(true, 0);
        origin.Close();
        var head = await connection.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        long total = connection.PrefetchedBody.Length;
        var buffer = new byte[65536];
        try
        {
            while (true)
            {
                int n = await connection.Stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
                if (n == 0) break;
                total += n;
            }
            Assert.False(reset);
            Assert.Equal(100_000, total);
        }
        catch (SocketException) when (reset) { }
    }
}
