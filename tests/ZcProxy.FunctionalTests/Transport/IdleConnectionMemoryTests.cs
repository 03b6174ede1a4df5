using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.RateLimiting;
using ZcProxy.Core.Transport;
using ZcProxy.Hosting;

namespace ZcProxy.Tests.Transport;

/// <summary>The whole process's live heap is measured: no other test may run meanwhile.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessHeapCollection
{
    public const string Name = "process-heap";
}

/// <summary>Memory held by idle keep-alive client connections of ZcProxy's own transport (issue 12: ≤ 4 KiB each).</summary>
[Collection(ProcessHeapCollection.Name)]
public sealed class IdleConnectionMemoryTests(ITestOutputHelper output)
{
    /// <summary>
    /// Live managed heap per idle keep-alive connection, all included (Kestrel's connection and HTTP/1.1 state, the
    /// transport's): a thousand connections opened by a python3 client (its sockets are not in this heap), each having
    /// served one response, against the heap before them, both after full compacting collections. The test host has
    /// Kestrel, the transport and a proxy listener's connection middleware (no logging, no proxy pipeline); most of it
    /// is Kestrel's own (see docs/transport.md "Memory per idle keep-alive connection"). The bound catches an object
    /// that comes back per idle connection (a delegate, a list, an async frame that lives as long as the connection).
    /// </summary>
    [Fact]
    public async Task IdleKeepAliveConnection_LiveHeap_StaysSmall()
    {
        if (!File.Exists("/usr/bin/python3")) return;
        ClientConnectionLimit? limit = null;
        try
        {
            // The connection middleware of a proxy listener (ProxyHost), each of which once kept an async frame per connection.
            await using var host = await ZeroCopyTestHost.StartAsync(listener: lo =>
            {
                var services = lo.ApplicationServices;
                limit = new ClientConnectionLimit(services.GetRequiredService<RuntimeOptions>(), new RateLimitMetrics(services.GetRequiredService<ProxyMetrics>()));
                lo.UseClientConnectionLimit(limit);
                lo.UseNewConnectionGrace(TimeProvider.System);
            });
            await MeasureAsync(host);
        }
        finally { limit?.Dispose(); }
    }

    private async Task MeasureAsync(ZeroCopyTestHost host)
    {
        const int Connections = 1000;
        // Warm-up with as many connections: JIT, and the pools and tables that grow to a thousand connections and stay
        // (without it the first reading held ~370 KB of that growth: 8,294 against 7,922-7,958 B per connection).
        await OpenIdleAsync(host, Connections, _ => Task.CompletedTask);
        await Poll.UntilAsync(() => host.Transport.OpenConnections == 0, "the warm-up connections closed");
        var attempts = new List<string>();
        for (int attempt = 1; attempt <= Attempts; attempt++)
        {
            long before = await SettledLiveHeapAsync();
            long during = 0;
            await OpenIdleAsync(host, Connections, async clients =>
            {
                await Poll.UntilAsync(() => host.Transport.OpenConnections == Connections && host.Transport.BlocksInUse == 0, "the connections idle");
                during = LiveHeap();
            });
            await Poll.UntilAsync(() => host.Transport.OpenConnections == 0, "the measured connections closed");
            long drift = LiveHeap() - before;
            long perConnection = (during - before) / Connections;
            attempts.Add($"attempt {attempt}: {perConnection} B per idle connection, the heap after them {drift:+#;-#;0} B against before");
            output.WriteLine(attempts[^1]);
            if (Math.Abs(drift) > MaxDrift) continue; // the rest of the process moved meanwhile: this reading is not the connections'
            Assert.InRange(perConnection, 0, MaxBytesPerIdleConnection);
            return;
        }
        Assert.Fail($"the rest of the process's heap moved by more than {MaxDrift} B during each of {Attempts} measurements: {string.Join("; ", attempts)}");
    }

    /// <summary>
    /// Leftovers of tests that ran before (a connection lingering up to LingeringTimeout, 5 s, after its test ended; a
    /// host still stopping) can be released or allocated while the thousand connections are open: once CI read
    /// -18,142 B per connection, 18 MB freed meanwhile. So the heap is read again after the connections closed, and a
    /// reading whose before and after differ by more than this is taken again. 256 KB is 256 B per connection, below
    /// the few hundred bytes the bound is there to catch.
    /// </summary>
    private const long MaxDrift = 256 * 1024;

    private const int Attempts = 3;

    /// <summary>The live heap once two readings in a row agree within <see cref="MaxDrift"/> / 4: nothing else is moving right now.</summary>
    private static async Task<long> SettledLiveHeapAsync()
    {
        long last = LiveHeap();
        await Poll.UntilAsync(() =>
        {
            long previous = last;
            last = LiveHeap();
            return Math.Abs(last - previous) <= MaxDrift / 4;
        }, "the process's live heap to settle");
        return last;
    }

    /// <summary>
    /// Measured 7,850-7,852 B (2026-12-05, main e70630a, Release and Debug, 7 runs alone) once the warm-up opens as many
    /// connections as the measurement. Before that the first reading also held the growth of pools and tables to a
    /// thousand connections, which stays after they close: a ~330-370 B step from run to run (8,234-8,294 against
    /// 7,903-7,958 B), for which the bound was 8,600. 8,200 catches an object of ~350 B kept per idle connection.
    /// </summary>
    private const long MaxBytesPerIdleConnection = 8_200;

    /// <summary>Opens <paramref name="count"/> connections from a python3 client, one answered GET on each, runs <paramref name="whileOpen"/>, closes them.</summary>
    private static async Task OpenIdleAsync(ZeroCopyTestHost host, int count, Func<Process, Task> whileOpen)
    {
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
            """, host.BaseAddress.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), count.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        { RedirectStandardInput = true, RedirectStandardOutput = true })!;
        try
        {
            Assert.Equal("ready", await clients.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)));
            await whileOpen(clients);
        }
        finally
        {
            clients.StandardInput.Close();
            await clients.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>
    /// Bytes of live objects after full compacting collections: each generation's size less its free space, as the last
    /// of those collections left them. Not GC.GetTotalMemory: after a compacting collection gen0 or gen1 can still hold
    /// ~4 MB that is nearly all free space (objects pinned at the time keep it from being compacted away), and
    /// GetTotalMemory counted it in some runs and not in others, so this test read 7.9 KB or 12.0-12.4 KB per connection
    /// for the same build when run alone (the 4 MB over a thousand connections; 6 of 15 runs over the bound).
    /// </summary>
    private static long LiveHeap()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        long live = 0;
        foreach (var generation in GC.GetGCMemoryInfo(GCKind.FullBlocking).GenerationInfo)
            live += generation.SizeAfterBytes - generation.FragmentationAfterBytes;
        return live;
    }

    /// <summary>
    /// An idle keep-alive connection of ZcProxy's own HTTP/1.1 layer behind the listener's grace holds no cancellation
    /// source of its own after serving requests that asked for RequestAborted and moved a body hole: neither the
    /// connection's ConnectionClosed source (the request's and the move's sources are cancelled from fields, not through
    /// registrations on it) nor the grace's (the layer is told of a close request by a call). Each such source, with the
    /// registration list and node a registration leaves on it, was 192 B per idle connection. Once asked for, the
    /// connection's token is cancelled by the client's close; asked for after the close, it is cancelled already.
    /// </summary>
    [Fact]
    public async Task IdleKeepAliveConnection_HoldsNoCancellationSource_UntilOneIsAskedFor()
    {
        var accepted = new System.Collections.Concurrent.ConcurrentQueue<(ZeroCopyConnection Connection, NewConnectionGrace Grace)>();
        await using var host = await ZeroCopyTestHost.StartAsync(ownHttp1: true, listener: lo => lo.UseNewConnectionGrace(TimeProvider.System),
            beforeHttp: connection =>
            {
                var grace = (NewConnectionGrace)connection.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionLifetimeNotificationFeature>()!;
                accepted.Enqueue(((ZeroCopyConnection)connection, grace));
                return Task.CompletedTask;
            });

        using (var first = await RawHttpClient.ConnectAsync(host.BaseAddress))
        using (var second = await RawHttpClient.ConnectAsync(host.BaseAddress))
        {
            foreach (var client in new[] { first, second })
                for (int i = 0; i < 2; i++)
                {
                    // A hole opened by hand with the request's RequestAborted: both sources ask for the connection's close.
                    await client.SendAsync(RawHttpClient.Get("/file-token?size=1000"));
                    var (status, length, _, _) = await client.ReadResponseAsync();
                    Assert.Equal(200, status);
                    Assert.Equal(1000, length);
                }
            Assert.Equal(4, host.MoveTokens.Count); // the moves ran, each with a token that the connection's close cancels
            Assert.Equal(2, accepted.Count);
            var (connection, grace) = accepted.First();
            var (other, _) = accepted.Last();
            await Poll.UntilAsync(() => host.Transport.BlocksInUse == 0, "the connections idle");
            foreach (var (c, g) in accepted)
            {
                Assert.False(c.HoldsClosedSource, "an idle connection holds a ConnectionClosed source nobody asked for");
                Assert.False(g.HoldsTokenSource, "an idle connection's grace holds a close-request source nobody asked for");
            }
            Assert.Equal(0, host.Http1HandedOver); // the own layer served them: Kestrel's would ask for both tokens

            var askedBefore = connection.ConnectionClosed;
            Assert.True(connection.HoldsClosedSource);
            Assert.False(askedBefore.IsCancellationRequested);
            first.Dispose();
            await Poll.UntilAsync(() => askedBefore.IsCancellationRequested, "the client's close cancels the token asked for before it");
            second.Dispose();
            await Poll.UntilAsync(() => host.Transport.OpenConnections == 0, "the other connection closed");
            // Its close posted the cancellation to its loop before the count dropped: once the loop ran what was posted
            // before this, the close is complete.
            var turned = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            other.Loop.Post(static s => ((TaskCompletionSource)s!).SetResult(), turned);
            await turned.Task.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.False(other.HoldsClosedSource);
            Assert.True(other.ConnectionClosed.IsCancellationRequested, "a token asked for after the close is not cancelled");
        }
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
