using System.Diagnostics;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Upstream;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Forwarding;

/// <summary>An upstream that stalls mid-body must not hold a spliced request until the client leaves. Counts fds, so runs alone.</summary>
[Collection(nameof(FdCountingCollection))]
public class SpliceIdleTimeoutTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static int OpenFds() => Directory.GetFiles("/proc/self/fd").Length;

    [Fact]
    public async Task UpstreamStallingMidSplice_AbortsTheClient_AfterTheBodyIdleTimeout_AndLeaksNoFds()
    {
        const long Length = (1L << 20) + 4096; // above the default splice threshold
        await using var origin = RawSocketOrigin.Start(async (request, socket) =>
        {
            if (request.Target == "/warm")
            {
                await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                return false;
            }
            await RawSocketOrigin.SendAsync(socket, $"HTTP/1.1 200 OK\r\nContent-Length: {Length}\r\n\r\n");
            await socket.SendAsync(new byte[64 * 1024].AsMemory());
            // Stall with the connection open until the proxy closes it (bounded, so a broken proxy cannot hang the origin).
            await socket.ReceiveAsync(new byte[1].AsMemory()).AsTask().WaitAsync(TimeSpan.FromSeconds(60));
            return false;
        });
        // Only the body idle timeout is short (the head keeps its 60 s default): a loaded machine delaying the origin's
        // head then cannot turn the test into a head timeout. UpstreamTimeoutsTests: a cluster's ActivityTimeout sets both.
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url, zeroCopy: "\"BodyIdleTimeout\": \"300ms\"");

        var (warm, warmReader) = await bed.ConnectRawAsync();
        using (warm)
        {
            await ForwarderTestBed.SendAsync(warm, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.Equal(200, (await warmReader.ReadResponseAsync()).Status);
        }
        await Poll.UntilAsync(() => origin.ClosedConnections == 1, "the warm-up connection to close");
        int baseline = OpenFds();

        var clock = Stopwatch.StartNew();
        var (socket, reader) = await bed.ConnectRawAsync();
        using (socket)
        {
            await ForwarderTestBed.SendAsync(socket, "GET /stall HTTP/1.1\r\nHost: x\r\n\r\n");
            await ForwarderTestBed.AssertAbortedAsync(reader);
        }
        clock.Stop();
        output.WriteLine($"client aborted {clock.Elapsed.TotalMilliseconds:0} ms after the request (idle timeout 300 ms)");
        // What cut the client is the body idle timeout (counted as such; without it the client was cut after ~6.8 s by
        // something else), and the configured one: the 60 s default could not have fired yet. No tighter wall-clock
        // bound: a loaded machine delays the abort, never hastens it.
        await Poll.UntilAsync(() => bed.Errors(UpstreamErrorKind.BodyTimeout) == 1, "the body timeout to be counted");
        Assert.True(clock.Elapsed < new ZcProxy.Core.Configuration.ZeroCopyOptions().BodyIdleTimeout / 2, $"aborted after {clock.Elapsed.TotalMilliseconds:0} ms");
        if (bed.TransportWired) Assert.True(bed.Spliced > 0, "the body went through the splice path");
        await Poll.UntilAsync(() => origin.ClosedConnections == 2, "the proxy to discard the upstream connection");
        Assert.Equal(0, bed.Proxy.Get<UpstreamConnectionPool>().IdleCount);

        // The proxy keeps serving.
        var (next, nextReader) = await bed.ConnectRawAsync();
        using (next)
        {
            await ForwarderTestBed.SendAsync(next, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.Equal(200, (await nextReader.ReadResponseAsync()).Status);
        }
        await Poll.UntilAsync(() => origin.ClosedConnections == 3, "the follow-up connection to close");
        await Poll.UntilAsync(() => OpenFds() <= baseline, $"open fds to return to {baseline}");
    }
}
