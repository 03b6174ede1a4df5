using System.Text;
using ZcProxy.Core.Transport;

namespace ZcProxy.Tests.Transport;

/// <summary>ZcProxy's own transport reads the client socket only when Kestrel asks (issue 13's precondition for splicing uploads).</summary>
public sealed class PullInputTests
{
    [Fact]
    public async Task RequestBodyNobodyReads_StaysInTheKernel()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        const int BodySize = 48 * 1024; // below the loopback socket buffer: all of it can sit in the receive queue
        await client.SendAsync($"POST /unread?expect={BodySize} HTTP/1.1\r\nHost: test\r\nContent-Length: {BodySize}\r\n\r\n" + new string('x', BodySize));
        var head = await client.ReadHeadAsync();
        // The request head's one recv may take body bytes along (up to one block); the rest was never asked for.
        // Kestrel's socket transport reads eagerly into its pipe: the queue would be empty there.
        var queued = int.Parse(head.Split("\r\n").Single(l => l.StartsWith("X-Kernel-Queued:", StringComparison.OrdinalIgnoreCase))[16..].Trim(),
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(queued, BodySize - ZeroCopyTransport.BlockSize, BodySize);
    }

    [Fact]
    public async Task ClientHangsUpWhileNothingIsRead_RequestAbortedFires()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        await client.SendAsync(RawHttpClient.Get("/until-aborted"));
        await Poll.UntilAsync(() => host.Transport.OpenConnections == 1, "the request is being served");
        await Task.Yield();
        client.Dispose();
        await Poll.UntilAsync(() => host.Outcomes.Any(o => o.Path == "/until-aborted"), "the handler saw RequestAborted", TimeSpan.FromSeconds(10));
        Assert.True(host.Outcomes.Single(o => o.Path == "/until-aborted").Result.IsComplete);
        await Poll.UntilAsync(() => host.Transport.OpenConnections == 0, "the connection ends", TimeSpan.FromSeconds(10));
    }

    /// <summary>
    /// The request and the FIN are both in the socket before anything reads it: epoll reports the hang-up once, while
    /// the request is still unread (so it is no close yet). Reading the request must then notice the FIN behind it:
    /// nothing else will read while a request without a body runs.
    /// </summary>
    [Fact]
    public async Task ClientHangsUpBeforeItsRequestIsRead_RequestAbortedFires()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ZeroCopyConnection? held = null;
        await using var host = await ZeroCopyTestHost.StartAsync(beforeHttp: connection =>
        {
            held = connection.Features.Get<ZeroCopyConnection>();
            return release.Task;
        });
        var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        await client.SendAsync(RawHttpClient.Get("/until-aborted"));
        client.Dispose();
        await Poll.UntilAsync(() => held is { } c && (c.ClientSocket.TroubleSeen & ZcProxy.Native.LinuxConstants.EPOLLRDHUP) != 0,
            "the hang-up reported while the request is unread");
        Assert.Equal(0, held!.Input.Buffered);
        release.SetResult();
        await Poll.UntilAsync(() => host.Outcomes.Any(o => o.Path == "/until-aborted"), "the handler saw RequestAborted", TimeSpan.FromSeconds(10));
        await Poll.UntilAsync(() => host.Transport.OpenConnections == 0, "the connection ends", TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task PipelinedRequests_AreServedInOrder_FromOneRecv()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        var requests = new StringBuilder();
        for (int i = 0; i < 20; i++) requests.Append(RawHttpClient.Get($"/file?size={1000 + i}"));
        await client.SendAsync(requests.ToString());
        for (int i = 0; i < 20; i++)
        {
            var (status, length, body, _) = await client.ReadResponseAsync();
            Assert.Equal(200, status);
            Assert.Equal(1000 + i, length);
            Assert.Equal(1000 + i, body);
        }
    }
}
