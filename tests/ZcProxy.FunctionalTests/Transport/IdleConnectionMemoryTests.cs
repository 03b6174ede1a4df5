using System.Diagnostics;
using Xunit.Abstractions;
using ZcProxy.Core.Transport;

namespace ZcProxy.Tests.Transport;

/// <summary>Memory held by idle keep-alive client connections of ZcProxy's own transport (issue 12: ≤ 4 KiB each).</summary>
public sealed class IdleConnectionMemoryTests(ITestOutputHelper output)
{
    /// <summary>
    /// Live managed heap per idle keep-alive connection, all included (Kestrel's connection and HTTP/1.1 state, the
    /// transport's): a thousand connections opened by a python3 client (its sockets are not in this heap), each having
    /// served one response, against the heap before them, both after full compacting collections. Printed; the bound
    /// only catches a regression (issue 12 wants 4 KiB; Kestrel's Http1Connection alone holds more). It measures the
    /// whole process's heap, so it runs alone, on request: ZCPROXY_MEASURE=1 dotnet test --filter IdleKeepAliveConnection_LiveHeap.
    /// </summary>
    [MeasurementFact]
    public async Task IdleKeepAliveConnection_LiveHeap_Measured()
    {
        if (!File.Exists("/usr/bin/python3")) return;
        await using var host = await ZeroCopyTestHost.StartAsync();
        const int Connections = 1000;
        long before = LiveHeap();
        using var clients = Process.Start(new ProcessStartInfo("python3", ["-c", """
            import socket, sys
            port, n = int(sys.argv[1]), int(sys.argv[2])
            socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
            for s in socks: s.sendall(b"GET /file?size=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
            for s in socks:
                got = b""
                while not (b"\r\n\r\n" in got and len(got) - got.index(b"\r\n\r\n") - 4 >= 1000): got += s.recv(65536)
            print("ready", flush=True)
            sys.stdin.read()
            """, host.BaseAddress.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), Connections.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        { RedirectStandardInput = true, RedirectStandardOutput = true })!;
        try
        {
            Assert.Equal("ready", await clients.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)));
            await Poll.UntilAsync(() => host.Transport.OpenConnections == Connections && host.Transport.BlocksInUse == 0, "the connections idle");
            long perConnection = (LiveHeap() - before) / Connections;
            output.WriteLine($"live heap per idle keep-alive connection: {perConnection} B");
            Assert.InRange(perConnection, 0, 12 * 1024);
        }
        finally
        {
            clients.StandardInput.Close();
            await clients.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    private static long LiveHeap()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    [Fact]
    public async Task IdleKeepAliveConnections_HoldNoInputOrOutputBlock()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        const int Connections = 20;
        var clients = new List<RawHttpClient>();
        try
        {
            for (int i = 0; i < Connections; i++)
            {
                var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
                clients.Add(client);
                await client.SendAsync(RawHttpClient.Get("/file?size=1000"));
                var (status, length, _, _) = await client.ReadResponseAsync();
                Assert.Equal(200, status);
                Assert.Equal(1000, length);
            }
            Assert.Equal(Connections, host.Transport.OpenConnections);
            // Each served a response and waits for its next request: a 16 KiB block kept per connection would show here.
            await Poll.UntilAsync(() => host.Transport.BlocksInUse == 0, $"no blocks held by {Connections} idle connections (held: {host.Transport.BlocksInUse})");

            // And they still work: the next request on each takes a block and gives it back.
            foreach (var client in clients)
            {
                await client.SendAsync(RawHttpClient.Get("/file?size=2000"));
                Assert.Equal(2000, (await client.ReadResponseAsync()).BodyLength);
            }
            await Poll.UntilAsync(() => host.Transport.BlocksInUse == 0, "no blocks held after the second requests");
        }
        finally
        {
            foreach (var client in clients) client.Dispose();
        }
    }
}

/// <summary>A measurement of the whole process (its heap): meaningful only alone, so it runs only when ZCPROXY_MEASURE=1.</summary>
public sealed class MeasurementFactAttribute : FactAttribute
{
    public MeasurementFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("ZCPROXY_MEASURE") != "1") Skip = "a measurement: run alone with ZCPROXY_MEASURE=1";
    }
}
