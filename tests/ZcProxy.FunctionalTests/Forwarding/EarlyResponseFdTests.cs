using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;
using ZcProxy.Tests.Transport;

namespace ZcProxy.Tests.Forwarding;

/// <summary>Early answers mid-upload leave no socket behind, on either forwarder (client, upstream and pooled connections).</summary>
[Collection(FdCountCollection.Name)]
public sealed class EarlyResponseFdTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task EarlyAnswersAndResetsMidUpload_LeaveNoFdsBehind(bool zeroCopy)
    {
        await using var answering = new RejectingOrigin();
        await using var resetting = new RejectingOrigin(answer: false);
        using var dir = new ConfigDirectory();
        BalancingTestConfig.Write(dir, zeroCopy, BalancingTestConfig.Cluster("c", "RoundRobin", "", BalancingTestConfig.Destination("a", answering.Url)) + ", "
            + BalancingTestConfig.Cluster("c2", "RoundRobin", "", BalancingTestConfig.Destination("b", resetting.Url)), secondRoute: true);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        await RunAsync(proxy.Url); // warm-up: first sockets, connection pools, the thread pool
        int before = FdCount.Count();

        for (int i = 0; i < 3; i++) await RunAsync(proxy.Url);

        await Poll.UntilAsync(() => FdCount.Count() <= before, $"socket/pipe/epoll fd count back to {before} (now {FdCount.Count()}: {FdCount.Describe()})", TimeSpan.FromSeconds(15));
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    private static async Task RunAsync(string proxyUrl)
    {
        var (answer, closed) = await EarlyResponseTests.UploadAsync(proxyUrl + "/upload", 8L << 20);
        Assert.StartsWith("HTTP/1.1 413", answer, StringComparison.Ordinal);
        Assert.True(closed);
        (answer, _) = await EarlyResponseTests.UploadAsync(proxyUrl + "/q2/upload", 8L << 20, awaitClose: false);
        Assert.StartsWith("HTTP/1.1 502", answer, StringComparison.Ordinal);
    }
}
