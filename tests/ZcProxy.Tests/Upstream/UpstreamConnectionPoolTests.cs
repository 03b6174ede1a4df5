using System.Net;
using System.Net.Sockets;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Tests.Upstream;

public class UpstreamConnectionPoolTests
{
    private static (UpstreamConnectionPool Pool, ManualTimeProvider Time) NewPool(int maxIdle = 2, int idleSeconds = 60)
    {
        var time = new ManualTimeProvider();
        var options = new RuntimeOptions(new ZcProxyOptions { ZeroCopy = new ZeroCopyOptions { MaxIdleConnectionsPerDestination = maxIdle, IdleConnectionTimeout = TimeSpan.FromSeconds(idleSeconds) } });
        return (new UpstreamConnectionPool(options, new ProxyMetrics(), time), time);
    }

    private static Socket Listener()
    {
        var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        return listener;
    }

    [Fact]
    public async Task Return_ThenRent_GivesTheSameConnection_UpToTheIdleLimit()
    {
        var (pool, _) = NewPool(maxIdle: 2);
        using var listener = Listener();
        int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using (pool)
        {
            var conns = new List<UpstreamConnection>();
            for (int i = 0; i < 3; i++) conns.Add(await pool.ConnectAsync("k", "127.0.0.1", port, TimeSpan.FromSeconds(5), CancellationToken.None));
            foreach (var c in conns) pool.Return(c);
            Assert.Equal(2, pool.IdleCount); // the third was closed
            Assert.Same(conns[1], pool.TryRentIdle("k")); // most recently used first
            Assert.Same(conns[0], pool.TryRentIdle("k"));
            Assert.Null(pool.TryRentIdle("k"));
            Assert.Null(pool.TryRentIdle("other"));
            foreach (var c in conns) c.Dispose();
        }
    }

    [Fact]
    public async Task IdleExpired_IsNotRented_AndTheSweepClosesIt()
    {
        var (pool, time) = NewPool(idleSeconds: 10);
        using var listener = Listener();
        int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using (pool)
        {
            pool.Return(await pool.ConnectAsync("k", "127.0.0.1", port, TimeSpan.FromSeconds(5), CancellationToken.None));
            time.Advance(TimeSpan.FromSeconds(11));
            Assert.Null(pool.TryRentIdle("k"));

            pool.Return(await pool.ConnectAsync("k", "127.0.0.1", port, TimeSpan.FromSeconds(5), CancellationToken.None));
            pool.Sweep();
            Assert.Equal(1, pool.IdleCount);
            time.Advance(TimeSpan.FromSeconds(11));
            pool.Sweep();
            Assert.Equal(0, pool.IdleCount);
        }
    }
}
