using System.Net;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.Diagnostics;

/// <summary>zcproxy_upstream_retries_total is one family with a reason label, whoever retried.</summary>
public class RetryMetricsTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task NextDestinationRetries_AreCountedByReason_InTheOneRetriesFamily(bool zeroCopy)
    {
        await using var dead = new ResettingOrigin(); // takes the request, then resets: an error after the request was sent
        await using var live = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 1, \"MaxFails\": 0", Destination("a", dead.Url), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        for (int i = 0; i < 4; i++)
        {
            using var response = await Client.GetAsync(proxy.Url + "/r");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var lines = (await Client.GetStringAsync(proxy.AdminUrl + "/metrics")).Split('\n');
        Assert.Single(lines, l => l == "# TYPE zcproxy_upstream_retries_total counter");
        Assert.Contains("zcproxy_upstream_retries_total{reason=\"error\"} 2", lines);
        Assert.Contains("zcproxy_upstream_retries_total{reason=\"stale_connection\"} 0", lines);
        Assert.DoesNotContain(lines, l => l.StartsWith("zcproxy_upstream_retries_total ", StringComparison.Ordinal)); // no unlabelled series
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Fact]
    public async Task EveryFamilyOfTheRunningProxy_HasOneHeader_AndEverySeriesOneLine()
    {
        await using var live = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        Write(dir, true, Cluster("c", "RoundRobin", "", Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        (await Client.GetAsync(proxy.Url + "/r")).Dispose();

        var lines = (await Client.GetStringAsync(proxy.AdminUrl + "/metrics")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var types = lines.Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).ToList();
        Assert.Contains("zcproxy_upstream_retries_total", types);
        Assert.Equal(types.Count, types.Distinct().Count());
        var series = lines.Where(l => !l.StartsWith('#')).Select(l => l[..l.LastIndexOf(' ')]).ToList();
        Assert.Equal(series.Count, series.Distinct().Count());
    }
}
