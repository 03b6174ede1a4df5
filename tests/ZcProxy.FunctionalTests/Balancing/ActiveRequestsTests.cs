using System.Net;
using System.Text.Json;
using Yarp.ReverseProxy;
using ZcProxy.Core.Balancing;
using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.Balancing;

/// <summary>
/// Requests in flight per destination are ZcProxy's own count (DestinationRuntime.ActiveRequests), kept around every
/// try on both forwarding paths: what the policies balance on and what /status shows. YARP's
/// DestinationState.ConcurrentRequestCount is YARP's and ZcProxy never writes it.
/// </summary>
public class ActiveRequestsTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UnderConcurrency_TheCountFollowsTheRequestsInFlight_IsNeverNegative_AndEndsAtExactlyZero(bool zeroCopy)
    {
        var holdingA = new HoldingOrigin();
        var holdingB = new HoldingOrigin();
        await using var a = await TestOrigin.StartAsync("A", holdingA.Map);
        await using var b = await TestOrigin.StartAsync("B", holdingB.Map);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "LeastRequests", "\"MaxFails\": 0", Destination("a", a.Url), Destination("b", b.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var pools = proxy.Get<DestinationRegistry>();
        var runtimes = new[] { pools.Get("c", "a"), pools.Get("c", "b") };
        var yarpStates = proxy.Get<IProxyStateLookup>().TryGetCluster("c", out var cluster) ? cluster.Destinations.Values.ToArray() : [];
        Assert.Equal(2, yarpStates.Length);

        // Sample the counts all along: a lost or doubled decrement would show as a negative value.
        int lowest = 0;
        using var stopSampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stopSampling.IsCancellationRequested)
            {
                foreach (var r in runtimes) lowest = Math.Min(lowest, r.ActiveRequests);
                await Task.Yield();
            }
        });

        const int kept = 24, abandoned = 8;
        using var abandon = new CancellationTokenSource();
        var keptRequests = Enumerable.Range(0, kept).Select(_ => Client.GetAsync(proxy.Url + "/hold")).ToList();
        var abandonedRequests = Enumerable.Range(0, abandoned).Select(_ => Client.GetAsync(proxy.Url + "/hold", abandon.Token)).ToList();
        await Poll.UntilAsync(() => holdingA.InFlight + holdingB.InFlight == kept + abandoned, "every request to be held by an origin");

        Assert.Equal(kept + abandoned, runtimes.Sum(r => r.ActiveRequests));
        Assert.Equal(kept + abandoned, await StatusActiveRequestsAsync(proxy));
        if (zeroCopy) Assert.All(yarpStates, d => Assert.Equal(0, d.ConcurrentRequestCount)); // not written by the zero-copy path

        // Clients that leave end their tries: the count drops by exactly that many.
        await abandon.CancelAsync();
        foreach (var request in abandonedRequests) await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        await Poll.UntilAsync(() => runtimes.Sum(r => r.ActiveRequests) == kept, "the abandoned requests to leave the count");
        Assert.Equal(kept, await StatusActiveRequestsAsync(proxy));

        holdingA.Release.SetResult();
        holdingB.Release.SetResult();
        foreach (var response in await Task.WhenAll(keptRequests))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            response.Dispose();
        }
        await Poll.UntilAsync(() => runtimes.All(r => r.ActiveRequests == 0), "every count back to 0");
        await stopSampling.CancelAsync();
        await sampler;

        Assert.Equal(0, lowest);
        Assert.Equal(0, await StatusActiveRequestsAsync(proxy));
        Assert.All(yarpStates, d => Assert.Equal(0, d.ConcurrentRequestCount));
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    /// <summary>The sum over the cluster's destinations of /status's activeRequests, checked equal to each pool.activeRequests.</summary>
    private static async Task<int> StatusActiveRequestsAsync(InProcessProxy proxy)
    {
        using var status = JsonDocument.Parse(await Client.GetStringAsync(proxy.AdminUrl + "/status"));
        int sum = 0;
        foreach (var d in status.RootElement.GetProperty("clusters")[0].GetProperty("destinations").EnumerateArray())
        {
            int active = d.GetProperty("activeRequests").GetInt32();
            Assert.Equal(active, d.GetProperty("pool").GetProperty("activeRequests").GetInt32());
            Assert.True(active >= 0, $"negative activeRequests {active}");
            sum += active;
        }
        return sum;
    }
}
