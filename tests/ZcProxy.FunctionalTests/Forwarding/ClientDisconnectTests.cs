using System.Net.Sockets;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Upstream;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Forwarding;

[CollectionDefinition(nameof(FdCountingCollection), DisableParallelization = true)]
public sealed class FdCountingCollection;

/// <summary>Counts this process's open fds, so it runs alone.</summary>
[Collection(nameof(FdCountingCollection))]
public class ClientDisconnectTests
{
    private static int OpenFds() => Directory.GetFiles("/proc/self/fd").Length;

    [Fact]
    public async Task ClientDisconnectMidBody_DiscardsTheUpstreamConnection_AndLeaksNoFds()
    {
        var streaming = new TaskCompletionSource();
        await using var origin = RawSocketOrigin.Start(async (request, socket) =>
        {
            if (request.Target == "/warm")
            {
                await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                return false;
            }
            await RawSocketOrigin.SendAsync(socket, $"HTTP/1.1 200 OK\r\nContent-Length: {1L << 30}\r\n\r\n");
            var chunk = new byte[256 * 1024];
            streaming.TrySetResult();
            for (int i = 0; i < 4096; i++) await socket.SendAsync(chunk.AsMemory()); // ends with an error once the proxy lets go
            return false;
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);

        // Warm up every lazily created fd (pools, epoll, pipes) with a complete exchange first.
        var (warm, warmReader) = await bed.ConnectRawAsync();
        using (warm)
        {
            await ForwarderTestBed.SendAsync(warm, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.Equal(200, (await warmReader.ReadResponseAsync()).Status);
        }
        await Poll.UntilAsync(() => origin.ClosedConnections == 1, "the warm-up connection to close");
        int baseline = OpenFds();

        var (socket, _) = await bed.ConnectRawAsync();
        await ForwarderTestBed.SendAsync(socket, "GET /huge HTTP/1.1\r\nHost: x\r\n\r\n");
        await streaming.Task.WaitAsync(TimeSpan.FromSeconds(20));
        var buffer = new byte[64 * 1024];
        long received = 0;
        while (received < 1 << 20) received += await socket.ReceiveAsync(buffer.AsMemory());
        RawSocketOrigin.Reset(socket); // the client goes away mid-body

        await Poll.UntilAsync(() => origin.ClosedConnections == 2, "the proxy to drop the upstream connection");
        await Poll.UntilAsync(() => bed.Errors(UpstreamErrorKind.ClientAborted) == 1, "the client abort to be counted");
        Assert.Equal(0, bed.Proxy.Get<UpstreamConnectionPool>().IdleCount);
        await Poll.UntilAsync(() => OpenFds() <= baseline, $"open fds to return to {baseline}");
    }
}
