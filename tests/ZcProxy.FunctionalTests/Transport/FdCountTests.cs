using ZcProxy.Core.Diagnostics;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Transport;

/// <summary>Tests that count this process's fds must not overlap with other tests opening sockets and files.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FdCountCollection
{
    public const string Name = "fd-count";
}

[Collection(FdCountCollection.Name)]
public sealed class FdCountTests
{
    [Fact]
    public async Task FaultsAndNormalBodies_LeaveNoFdsBehind()
    {
        await RunScenarioAsync(); // warm-up: first use of sockets, epoll, the thread pool in this process
        int before = CountFds();

        await RunScenarioAsync();

        await Poll.UntilAsync(() => CountFds() <= before, $"socket/pipe/epoll fd count back to {before} (now {CountFds()}: {DescribeFds()})", TimeSpan.FromSeconds(15));
    }

    private static async Task RunScenarioAsync()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using (var client = await RawHttpClient.ConnectAsync(host.BaseAddress))
        {
            await client.SendAsync(RawHttpClient.Get("/splice?size=200000") + RawHttpClient.Get("/file?size=200000") + RawHttpClient.Get("/direct?size=2100000"));
            await client.ReadResponseAsync();
            await client.ReadResponseAsync();
            await client.ReadResponseAsync();
        }

        for (int i = 0; i < 3; i++)
        {
            using (var early = await RawHttpClient.ConnectAsync(host.BaseAddress))
            {
                await early.SendAsync(RawHttpClient.Get($"/splice?size={4 << 20}&send={1 << 20}&end={(i % 2 == 0 ? "Close" : "Reset")}"));
                await Assert.ThrowsAnyAsync<IOException>(() => early.ReadResponseAsync());
            }
            using (var shortFile = await RawHttpClient.ConnectAsync(host.BaseAddress))
            {
                await shortFile.SendAsync(RawHttpClient.Get("/file-short?size=1000&promise=300000"));
                await Assert.ThrowsAnyAsync<IOException>(() => shortFile.ReadResponseAsync());
            }
            using (var shortDirect = await RawHttpClient.ConnectAsync(host.BaseAddress))
            {
                await shortDirect.SendAsync(RawHttpClient.Get("/direct?size=5000&promise=3000000"));
                await Assert.ThrowsAnyAsync<IOException>(() => shortDirect.ReadResponseAsync());
            }
            using (var reset = await RawHttpClient.ConnectAsync(host.BaseAddress))
            {
                long splicedBefore = host.Metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response);
                await reset.SendAsync(RawHttpClient.Get($"/splice?size={32 << 20}&send={32 << 20}&end=Close"));
                await reset.ReadHeadAsync();
                await reset.ReadSomeAsync(100_000);
                await Poll.UntilAsync(() => host.Metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response) > splicedBefore + 100_000, "the body started");
                reset.Reset();
            }
        }
        await Poll.UntilAsync(() => host.Outcomes.Count == 3 + 12, "every handler ended", TimeSpan.FromSeconds(15));
        await Poll.UntilAsync(() => host.Transport.OpenConnections == 0, "every connection ended", TimeSpan.FromSeconds(15));
        Assert.Equal(1, host.Loops.RegistrationCount); // only the listening socket: every connection and splice source left its loop
    }

    private static int CountFds() => FdCount.Count();

    private static string DescribeFds() => FdCount.Describe();
}

/// <summary>This process's fds of the kinds the transport opens (/proc/self/fd).</summary>
public static class FdCount
{
    /// <summary>Sockets, pipes and anon inodes (epoll, eventfd): what the transport opens. Assemblies and
    /// symbol files the runtime maps lazily (for example to format an exception's stack trace) are not ours.</summary>
    private static string[] OurKindOfFds() => Directory.GetFiles("/proc/self/fd")
        .Select(f => { try { return new FileInfo(f).LinkTarget ?? ""; } catch (IOException) { return ""; } })
        .Where(t => t.StartsWith("socket:") || t.StartsWith("pipe:") || t.StartsWith("anon_inode:"))
        .ToArray();

    public static int Count() => OurKindOfFds().Length;

    public static string Describe() => string.Join(", ", OurKindOfFds().GroupBy(t => t.Split(':')[0]).Select(g => $"{g.Key}×{g.Count()}"));
}
