using System.Collections.Concurrent;
using System.IO.Pipelines;
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
    /// <summary>
    /// A read that waits for the socket allocates no frame: the input is its own pending value task. Several
    /// connections' reads wait at once on one loop, more than pooled async frames (one per thread and one per core)
    /// could serve: as an async method each waiting read boxed its frame (~200 B).
    /// </summary>
    [Fact]
    public async Task WaitingReads_AllocateNoFrame()
    {
        const int Connections = 12;
        var held = new ConcurrentQueue<ZeroCopyConnection>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var host = await ZeroCopyTestHost.StartAsync(beforeHttp: connection =>
        {
            held.Enqueue(connection.Features.Get<ZeroCopyConnection>()!);
            return release.Task;
        });
        var clients = new List<RawHttpClient>();
        try
        {
            for (int i = 0; i < Connections; i++) clients.Add(await RawHttpClient.ConnectAsync(host.BaseAddress));
            await Poll.UntilAsync(() => held.Count == Connections, "every connection accepted and held before HTTP");
            var busiest = held.GroupBy(c => c.Loop).OrderByDescending(g => g.Count()).First().ToArray();
            Assert.True(busiest.Length >= 4, $"{busiest.Length} connections on the busiest loop");

            var reads = new ValueTask<ReadResult>[busiest.Length];
            var measured = new TaskCompletionSource<(long Bytes, int Pending)>(TaskCreationOptions.RunContinuationsAsynchronously);
            busiest[0].Loop.Post(_ =>
            {
                Keep(reads, 0, busiest[0].Input.ReadAsync()); // the first read's recv rents the loop's first block
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 1; i < busiest.Length; i++) Keep(reads, i, busiest[i].Input.ReadAsync());
                long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
                measured.SetResult((bytes, reads.Count(r => !r.IsCompleted)));
            }, null);
            var (allocated, pending) = await measured.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(busiest.Length, pending); // nothing was sent: every read waits
            // Each read's first recv finds the socket empty and drops the block's Segment (64 B); a boxed frame is ~200 B more.
            long perRead = allocated / (busiest.Length - 1);
            Assert.True(perRead <= 64, $"{allocated} B allocated by {busiest.Length - 1} waiting reads");

            foreach (var client in clients) client.Dispose(); // the waiting reads end with the end of the stream
            foreach (var read in reads) Assert.True((await read.AsTask().WaitAsync(TimeSpan.FromSeconds(30))).IsCompleted);
        }
        finally
        {
            foreach (var client in clients) client.Dispose();
            release.SetResult();
        }
    }

    /// <summary>Holds a read to be awaited once, later.</summary>
    private static void Keep(ValueTask<ReadResult>[] reads, int index, ValueTask<ReadResult> read) => reads[index] = read;
}
