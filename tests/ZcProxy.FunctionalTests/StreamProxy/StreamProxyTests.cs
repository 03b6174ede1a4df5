using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Relay;
using ZcProxy.Native;

namespace ZcProxy.Tests.StreamProxy;

/// <summary>
/// TCP stream mode end to end: real sockets on 127.0.0.1, a raw TCP origin, the real proxy (ProxyHost) in this process.
/// </summary>
public sealed class StreamProxyTests
{
    private const string Stream = """ "s": { "Listen": "127.0.0.1:0", "ClusterId": "c" } """;

    [Fact]
    public async Task Exchange_16MiBEachWay_ShaExact_SplicedBothWays_CountedAndLogged()
    {
        const long Size = 16 << 20;
        await using var origin = StreamWire.ExchangeOrigin(Size);
        await using var rig = await StreamRig.StartAsync(Stream, StreamRig.Cluster("c", origin.Address));

        using var client = await rig.ConnectAsync("s");
        var (length, sha) = await StreamWire.ExchangeAsync(client, Size);

        Assert.Equal(Size, length);
        Assert.Equal(BodyPattern.Sha256(Size), sha);
        await Poll.UntilAsync(() => !origin.Reports.IsEmpty, "the origin's report");
        Assert.Equal($"{Size} {BodyPattern.Sha256(Size)}", Assert.Single(origin.Reports));
        await Poll.UntilAsync(() => rig.Closed("s", "done") == 1, "the connection to be counted as done");
        Assert.Equal(Size, rig.BodyBytes(BodyMechanism.Splice, BodyDirection.Request));
        Assert.Equal(Size, rig.BodyBytes(BodyMechanism.Splice, BodyDirection.Response));
        Assert.Equal(0, rig.BodyBytes(BodyMechanism.Copy, BodyDirection.Request) + rig.BodyBytes(BodyMechanism.Copy, BodyDirection.Response));
        Assert.Equal(Size, rig.Counter("zcproxy_stream_bytes_total", ("stream", "s"), ("direction", "request")));
        Assert.Equal(Size, rig.Counter("zcproxy_stream_bytes_total", ("stream", "s"), ("direction", "response")));
        Assert.Equal(1, rig.Counter("zcproxy_stream_connections_total", ("stream", "s")));

        var line = new Regex($@"^127\.0\.0\.1:{((IPEndPoint)client.LocalEndPoint!).Port} \[[^\]]+\] stream=s upstream=127\.0\.0\.1:{origin.Port} end=done " +
            $@"request_bytes={Size} response_bytes={Size} duration=\d+\.\d{{3}} connect=\d+\.\d{{3}}$");
        await Poll.UntilAsync(() => rig.AccessLogLines().Any(line.IsMatch), "the connection's access-log line");
        Assert.Single(rig.AccessLogLines(), l => l.Contains("stream=s"));
    }

    [Fact]
    public async Task HalfClose_ClientFinishesFirst_TheUpstreamStillAnswers()
    {
        const long Request = 1 << 20, Response = 3 << 20;
        await using var origin = TcpOrigin.Start(async (socket, o) =>
        {
            var (got, sha) = await StreamWire.ReceiveAllAsync(socket, o.Stopping); // to the client's FIN, passed on by the proxy
            o.Reports.Enqueue($"{got} {sha}");
            await StreamWire.SendPatternAsync(socket, Response, o.Stopping);  // only then answer
            socket.Shutdown(SocketShutdown.Send);
        });
        await using var rig = await StreamRig.StartAsync(Stream, StreamRig.Cluster("c", origin.Address));

        using var client = await rig.ConnectAsync("s");
        await StreamWire.SendPatternAsync(client, Request);
        client.Shutdown(SocketShutdown.Send);
        var (length, sha) = await StreamWire.ReceiveAllAsync(client);

        Assert.Equal($"{Request} {BodyPattern.Sha256(Request)}", Assert.Single(origin.Reports));
        Assert.Equal(Response, length);
        Assert.Equal(BodyPattern.Sha256(Response), sha);
        await Poll.UntilAsync(() => rig.Closed("s", "done") == 1, "the connection to end as done");
    }

    [Fact]
    public async Task HalfClose_UpstreamFinishesFirst_TheClientStillSends()
    {
        const long Greeting = 1 << 20, Upload = 2 << 20;
        await using var origin = TcpOrigin.Start(async (socket, o) =>
        {
            await StreamWire.SendPatternAsync(socket, Greeting, o.Stopping);
            socket.Shutdown(SocketShutdown.Send);                            // the upstream is done talking
            var (got, sha) = await StreamWire.ReceiveAllAsync(socket, o.Stopping);
            o.Reports.Enqueue($"{got} {sha}");
        });
        await using var rig = await StreamRig.StartAsync(Stream, StreamRig.Cluster("c", origin.Address));

        using var client = await rig.ConnectAsync("s");
        var (length, sha) = await StreamWire.ReceiveAllAsync(client);       // to the upstream's FIN
        Assert.Equal(Greeting, length);
        Assert.Equal(BodyPattern.Sha256(Greeting), sha);
        await StreamWire.SendPatternAsync(client, Upload);                  // the other way still flows
        client.Shutdown(SocketShutdown.Send);

        await Poll.UntilAsync(() => !origin.Reports.IsEmpty, "the origin's report");
        Assert.Equal($"{Upload} {BodyPattern.Sha256(Upload)}", Assert.Single(origin.Reports));
        await Poll.UntilAsync(() => rig.Closed("s", "done") == 1, "the connection to end as done");
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("v2")]
    public async Task ProxyProtocol_HeaderReachesTheUpstream_ByteExact_BeforeTheClientsBytes(string version)
    {
        await using var origin = TcpOrigin.Start(async (socket, o) =>
        {
            byte[] header;
            if (version == "v1")
            {
                var line = new List<byte>();
                while (line.Count < 2 || line[^2] != '\r' || line[^1] != '\n') line.AddRange(await TcpOrigin.ReceiveExactlyAsync(socket, 1, o.Stopping));
                header = [.. line];
            }
            else
            {
                var fixedPart = await TcpOrigin.ReceiveExactlyAsync(socket, 16, o.Stopping);
                header = [.. fixedPart, .. await TcpOrigin.ReceiveExactlyAsync(socket, BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(14)), o.Stopping)];
            }
            o.Reports.Enqueue(Convert.ToHexString(header));
            var rest = await TcpOrigin.ReceiveExactlyAsync(socket, 5, o.Stopping);
            await TcpOrigin.SendAllAsync(socket, rest, o.Stopping);
        });
        await using var rig = await StreamRig.StartAsync($$""" "s": { "Listen": "127.0.0.1:0", "ClusterId": "c", "ProxyProtocol": "{{version}}" } """,
            StreamRig.Cluster("c", origin.Address));

        using var client = await rig.ConnectAsync("s");
        Assert.Equal("hello", await StreamWire.EchoAsync(client, "hello"));

        int clientPort = ((IPEndPoint)client.LocalEndPoint!).Port, streamPort = rig.EndPointOf("s").Port;
        byte[] expected = version == "v1"
            ? Encoding.ASCII.GetBytes($"PROXY TCP4 127.0.0.1 127.0.0.1 {clientPort} {streamPort}\r\n")
            : [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
               0x21, 0x11, 0x00, 0x0C,                                                  // v2 PROXY, TCP over IPv4, 12 address bytes
               127, 0, 0, 1, 127, 0, 0, 1,
               (byte)(clientPort >> 8), (byte)clientPort, (byte)(streamPort >> 8), (byte)streamPort];
        Assert.Equal(Convert.ToHexString(expected), Assert.Single(origin.Reports));
    }

    [Fact]
    public async Task DeadDestination_IsSkipped_TheConnectFailureIsCountedAndRetried()
    {
        await using var origin = TcpOrigin.Echo();
        using var dead = new ReservedPort(); // refuses, and no other test's server takes the port meanwhile
        await using var rig = await StreamRig.StartAsync(Stream,
            StreamRig.ClusterWith("c", """ "LoadBalancingPolicy": "RoundRobin", """, $"tcp://127.0.0.1:{dead.Port}", origin.Address));

        for (int i = 0; i < 6; i++)
        {
            using var client = await rig.ConnectAsync("s");
            Assert.Equal($"ping {i}", await StreamWire.EchoAsync(client, $"ping {i}"));
        }

        Assert.Equal(6, origin.Accepted);
        long failures = rig.Counter("zcproxy_stream_connect_failures_total", ("stream", "s"));
        Assert.InRange(failures, 1, 2); // round robin reaches the dead one within two connections; its breaker then keeps it out
        Assert.Equal(failures, rig.Counter(RetryMetrics.Name, ("reason", "connect_error")));
        await Poll.UntilAsync(() => rig.Closed("s", "done") == 6, "six connections done");
    }

    [Fact]
    public async Task NoHealthyDestination_ClosesAtOnce_IsCounted_AndTheTcpCheckBringsItBack()
    {
        using var reserved = new ReservedPort(); // refuses until the origin below starts on it; no other test gets it
        int port = reserved.Port;
        await using var rig = await StreamRig.StartAsync(Stream, StreamRig.ClusterWith("c", """
            "HealthCheck": { "Active": { "Enabled": true, "Interval": "200ms", "Timeout": "1s" } },
            "Metadata": { "ConsecutiveFailuresHealthPolicy.Threshold": "1" },
            """, $"tcp://127.0.0.1:{port}"));
        await Poll.UntilAsync(() => ActiveHealth(rig) == DestinationHealth.Unhealthy, "the TCP health check to mark the destination unhealthy");

        using (var client = await rig.ConnectAsync("s"))
        {
            var buffer = new byte[16];
            Assert.Equal(0, await client.ReceiveAsync(buffer)); // closed by the proxy without a byte
        }
        await Poll.UntilAsync(() => rig.Closed("s", "no_destination") == 1, "the refused connection to be counted");
        Assert.Equal(0, rig.Counter("zcproxy_stream_connect_failures_total", ("stream", "s"))); // no connect was even tried

        await using var origin = TcpOrigin.Echo(port);
        await Poll.UntilAsync(() => ActiveHealth(rig) == DestinationHealth.Healthy, "the TCP health check to find the destination again");
        using var again = await rig.ConnectAsync("s");
        Assert.Equal("back", await StreamWire.EchoAsync(again, "back"));
    }

    private static DestinationHealth ActiveHealth(StreamRig rig)
        => rig.State.TryGetCluster("c", out var cluster) ? cluster.DestinationsState.AllDestinations.Single().Health.Active : DestinationHealth.Unknown;

    [Fact]
    public async Task IdleTimeout_ClosesAConnectionWhereNothingMoves()
    {
        await using var origin = TcpOrigin.Echo();
        await using var rig = await StreamRig.StartAsync(""" "s": { "Listen": "127.0.0.1:0", "ClusterId": "c", "IdleTimeout": "300ms" } """,
            StreamRig.Cluster("c", origin.Address));

        using var client = await rig.ConnectAsync("s");
        Assert.Equal("alive", await StreamWire.EchoAsync(client, "alive"));
        using var bounded = new CancellationTokenSource(Poll.DefaultTimeout);
        Assert.Equal(0, await client.ReceiveAsync(new byte[16], SocketFlags.None, bounded.Token)); // the proxy closes it

        await Poll.UntilAsync(() => rig.Closed("s", "idle_timeout") == 1, "the connection to be counted as idle_timeout");
        await Poll.UntilAsync(() => origin.Accepted == 1 && rig.Streams.OpenConnections == 0, "the upstream side closed too");
    }

    [Fact]
    public async Task IdleTimeout_BoundsAClientThatStopsReading()
    {
        await using var origin = TcpOrigin.Start(async (socket, o) =>
        {
            while (true) await StreamWire.SendPatternAsync(socket, 1 << 20, o.Stopping); // until the proxy closes
        });
        await using var rig = await StreamRig.StartAsync(""" "s": { "Listen": "127.0.0.1:0", "ClusterId": "c", "IdleTimeout": "300ms" } """,
            StreamRig.Cluster("c", origin.Address));

        using var client = await rig.ConnectAsync("s"); // and never reads: buffers fill, then nothing moves
        await Poll.UntilAsync(() => rig.Closed("s", "idle_timeout") == 1, "the stalled connection to hit the idle timeout");
        await Poll.UntilAsync(() => origin.Reports.Any(r => r.StartsWith("failed")), "the upstream's sends to fail once the proxy closed");
        Assert.True(rig.BodyBytes(BodyMechanism.Splice, BodyDirection.Response) > 0);
    }

    /// <summary>
    /// ZeroCopy.RelaySendLowWatermark (64 KiB by default) is on both of the proxy's sockets of a stream, found in this
    /// process by their ports; with a client that reads nothing, its socket holds about that much unsent once the relay
    /// waits (the rest in the relay's pipe), not its send buffer (~4 MiB).
    /// </summary>
    [Fact]
    public async Task BothSocketsOfAStream_HoldAtMostTheLowWatermarkUnsent()
    {
        await using var origin = TcpOrigin.Start(async (socket, o) =>
        {
            while (true) await StreamWire.SendPatternAsync(socket, 1 << 20, o.Stopping); // until the proxy closes
        });
        await using var rig = await StreamRig.StartAsync(""" "s": { "Listen": "127.0.0.1:0", "ClusterId": "c" } """,
            StreamRig.Cluster("c", origin.Address));
        using var client = await rig.ConnectAsync("s"); // and never reads

        long seen = -1;
        int still = 0;
        await Poll.UntilAsync(() =>
        {
            long now = rig.BodyBytes(BodyMechanism.Splice, BodyDirection.Response);
            still = now > 0 && now == seen ? still + 1 : 0;
            seen = now;
            return Task.FromResult(still >= 3);
        }, "the relay waits for the client");
        int toClient = ProxySocket(localPort: rig.EndPointOf("s").Port, remotePort: ((IPEndPoint)client.LocalEndPoint!).Port);
        int toUpstream = ProxySocket(localPort: null, remotePort: origin.Port);
        Assert.Equal((SpliceRelay.DefaultSendLowWatermark, SpliceRelay.DefaultSendLowWatermark),
            (Syscalls.NotSentLowWatermark(toClient), Syscalls.NotSentLowWatermark(toUpstream)));
        Assert.InRange(Syscalls.BytesUnsent(toClient), 0, SpliceRelay.DefaultSendLowWatermark + 128 * 1024);
    }

    /// <summary>The fd of this process's IPv4 TCP socket with these ports (<paramref name="localPort"/> null: any).</summary>
    private static int ProxySocket(int? localPort, int remotePort)
    {
        static int Port(string address) => Convert.ToInt32(address[(address.IndexOf(':') + 1)..], 16);
        var inodes = File.ReadLines("/proc/self/net/tcp").Skip(1)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => (localPort is null || Port(f[1]) == localPort) && Port(f[2]) == remotePort && f[3] == "01") // ESTABLISHED
            .Select(f => $"socket:[{f[9]}]")
            .ToHashSet();
        var fds = Directory.GetFiles("/proc/self/fd")
            .Where(path => new FileInfo(path).LinkTarget is { } target && inodes.Contains(target))
            .Select(path => int.Parse(Path.GetFileName(path), System.Globalization.CultureInfo.InvariantCulture))
            .ToList();
        Assert.Single(fds);
        return fds[0];
    }

    [Fact]
    public async Task Reload_AddsAndRemovesStreams_EstablishedConnectionsGoOn()
    {
        await using var origin = TcpOrigin.Echo();
        var cluster = StreamRig.Cluster("c", origin.Address);
        await using var rig = await StreamRig.StartAsync("""
            "a": { "Listen": "127.0.0.1:0", "ClusterId": "c" }, "b": { "Listen": "127.0.0.1:0", "ClusterId": "c" }
            """, cluster);
        var a = rig.EndPointOf("a");
        var b = rig.EndPointOf("b");
        using var onA = await rig.ConnectAsync("a");
        using var onB = await rig.ConnectAsync("b");
        Assert.Equal("a1", await StreamWire.EchoAsync(onA, "a1"));
        Assert.Equal("b1", await StreamWire.EchoAsync(onB, "b1"));

        await rig.ReloadAsync("""
            "a": { "Listen": "127.0.0.1:0", "ClusterId": "c" }, "n": { "Listen": "127.0.0.1:0", "ClusterId": "c" }
            """, cluster);
        await Poll.UntilAsync(() => rig.Streams.EndPointOf("b") is null && rig.Streams.EndPointOf("n") is not null, "b to stop listening and n to start");

        Assert.Equal(a, rig.EndPointOf("a"));                                   // unchanged: the same socket
        Assert.Equal("a2", await StreamWire.EchoAsync(onA, "a2"));               // established connections go on,
        Assert.Equal("b2", await StreamWire.EchoAsync(onB, "b2"));               // the removed stream's too
        using (var refused = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            var e = await Assert.ThrowsAsync<SocketException>(() => refused.ConnectAsync(b));
            Assert.Equal(SocketError.ConnectionRefused, e.SocketErrorCode);
        }
        using var onN = await rig.ConnectAsync("n");
        Assert.Equal("n1", await StreamWire.EchoAsync(onN, "n1"));
        using var onA2 = await rig.ConnectAsync("a");
        Assert.Equal("a3", await StreamWire.EchoAsync(onA2, "a3"));
        Assert.Equal(0, rig.Counter("zcproxy_stream_closed_total", ("stream", "a"), ("reason", "stopped")) + rig.Closed("b", "stopped"));
    }

    [Fact]
    public async Task Backup_TakesOver_WhenThePrimaryRefuses()
    {
        await using var backup = TcpOrigin.Echo();
        await using var primary = TcpOrigin.Echo();
        int primaryPort = primary.Port;
        await using var rig = await StreamRig.StartAsync(Stream, $$"""
            "c": { "Destinations": {
              "p": { "Address": "tcp://127.0.0.1:{{primaryPort}}" },
              "b": { "Address": "{{backup.Address}}", "Metadata": { "Backup": true } } } }
            """);
        for (int i = 0; i < 3; i++)
        {
            using var client = await rig.ConnectAsync("s");
            Assert.Equal("p", await StreamWire.EchoAsync(client, "p"));
        }
        Assert.Equal((3, 0), (primary.Accepted, backup.Accepted));

        await primary.DisposeAsync(); // refuses from now on
        using var failedOver = await rig.ConnectAsync("s");
        Assert.Equal("b", await StreamWire.EchoAsync(failedOver, "b"));
        Assert.Equal(1, backup.Accepted);
    }

    [Fact]
    public async Task DrainedDestination_TakesNoNewConnection_ItsOpenOneGoesOn()
    {
        await using var draining = TcpOrigin.Echo();
        await using var other = TcpOrigin.Echo();
        await using var rig = await StreamRig.StartAsync(Stream,
            StreamRig.ClusterWith("c", """ "LoadBalancingPolicy": "FirstAlphabetical", """, draining.Address, other.Address));
        using var open = await rig.ConnectAsync("s");
        Assert.Equal("before", await StreamWire.EchoAsync(open, "before"));
        Assert.Equal(1, draining.Accepted); // d0 comes first alphabetically

        rig.Proxy.Get<DestinationRegistry>().Get("c", "d0").SetAdminState(DestinationAdminState.Draining);
        for (int i = 0; i < 3; i++)
        {
            using var client = await rig.ConnectAsync("s");
            Assert.Equal("new", await StreamWire.EchoAsync(client, "new"));
        }
        Assert.Equal((1, 3), (draining.Accepted, other.Accepted));
        Assert.Equal("after", await StreamWire.EchoAsync(open, "after"));
    }

    [Fact]
    public async Task ConsistentHash_OnTheClientAddress_SticksToOneDestination()
    {
        await using var one = TcpOrigin.Echo();
        await using var two = TcpOrigin.Echo();
        await using var three = TcpOrigin.Echo();
        await using var rig = await StreamRig.StartAsync(Stream,
            StreamRig.ClusterWith("c", """ "LoadBalancingPolicy": "ConsistentHash", "Metadata": { "HashKey": "ClientIp" }, """, one.Address, two.Address, three.Address));
        for (int i = 0; i < 6; i++)
        {
            using var client = await rig.ConnectAsync("s");
            Assert.Equal("x", await StreamWire.EchoAsync(client, "x"));
        }
        Assert.Equal(6, new[] { one.Accepted, two.Accepted, three.Accepted }.Max()); // every connection of 127.0.0.1 on one ring owner
    }
}
