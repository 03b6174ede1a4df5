using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ZcProxy.Core.Balancing;
using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.Balancing;

/// <summary>Backups, breakers and the all-down case, with real origins stopped and restarted on their port.</summary>
public class FailoverTests
{
    private static async Task<string> Body(string url)
    {
        using var response = await Client.GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Backup_TakesOverWhenPrimariesAreDown_AndGivesBack(bool zeroCopy)
    {
        using var reserved = new ReservedPort(); // while the primary is down no other test's server takes its port
        int primaryPort = reserved.Port;
        var primary = await TestOrigin.StartAsync("P", port: primaryPort);
        await using var backup = await TestOrigin.StartAsync("K");
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 1, \"MaxFails\": 2, \"FailTimeout\": \"1s\"",
            Destination("p", primary.Url), Destination("k", backup.Url, "\"Backup\": true")));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        TestOrigin? restarted = null;
        try
        {
            for (int i = 0; i < 10; i++) Assert.StartsWith("P ", await Body(proxy.Url + "/b"));
            Assert.Equal(0, backup.Requests);

            await primary.DisposeAsync(); // the primary goes away: its tries fail over to the backup (retry), then its breaker opens
            var runtime = proxy.Get<DestinationRegistry>().Get("c", "p");
            for (int i = 0; i < 10 || (i < 40 && !runtime.IsBroken); i++) Assert.StartsWith("K ", await Body(proxy.Url + "/b"));
            Assert.True(runtime.IsBroken, $"failures {runtime.Failures}, breaker {runtime.Breaker?.State}, requests {runtime.Requests}");
            long failures = runtime.Failures;
            for (int i = 0; i < 5 && runtime.IsBroken; i++) Assert.StartsWith("K ", await Body(proxy.Url + "/b"));
            if (runtime.IsBroken) Assert.Equal(failures, runtime.Failures); // while open, the primary is not even tried

            restarted = await TestOrigin.StartAsync("P", port: primaryPort);
            await Poll.UntilAsync(async () => (await Body(proxy.Url + "/b")).StartsWith("P "), "the primary to take the traffic back");
            int backupRequests = backup.Requests;
            for (int i = 0; i < 10; i++) Assert.StartsWith("P ", await Body(proxy.Url + "/b"));
            Assert.Equal(backupRequests, backup.Requests);
        }
        finally
        {
            if (restarted is not null) await restarted.DisposeAsync();
        }
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Breaker_OpensOnFailOnStatuses_AndClosesWhenTheDestinationRecovers(bool zeroCopy)
    {
        bool failing = true;
        await using var flaky = await TestOrigin.StartAsync("A", app => app.MapGet("/f", (HttpContext c) =>
        {
            if (Volatile.Read(ref failing)) c.Response.StatusCode = 500;
            return "A";
        }));
        await using var steady = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"MaxFails\": 3, \"FailTimeout\": \"1s\", \"FailOn\": \"500\"",
            Destination("a", flaky.Url), Destination("b", steady.Url)));
        // The breaker's clock moves only when the test says: on a loaded machine three failures may take longer than the
        // real 1 s window, or the break may end between two requests below.
        var clock = new ManualTimeProvider();
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile, services => services.Replace(ServiceDescriptor.Singleton<TimeProvider>(clock)));
        var runtime = proxy.Get<DestinationRegistry>().Get("c", "a");

        for (int i = 0; i < 20 && !runtime.IsBroken; i++) await Client.GetAsync(proxy.Url + "/f");
        Assert.True(runtime.IsBroken, $"failures {runtime.Failures}, breaker {runtime.Breaker?.State}, requests {runtime.Requests}");
        Assert.Contains("\"breaker\": \"open\"", await Client.GetStringAsync(proxy.AdminUrl + "/status"));
        int seen = flaky.Requests;
        for (int i = 0; i < 6; i++) Assert.Equal("B GET /f", await Body(proxy.Url + "/f"));
        Assert.Equal(seen, flaky.Requests); // nothing reached it while open

        Volatile.Write(ref failing, false);
        clock.Advance(TimeSpan.FromSeconds(1)); // the break is over: the next try of "a" is the trial
        await Poll.UntilAsync(async () =>
        {
            await Client.GetAsync(proxy.Url + "/f");
            return runtime.Breaker!.State == BreakerState.Closed && !runtime.IsBroken;
        }, "the breaker to close after a successful trial");
        var bodies = new List<string>();
        for (int i = 0; i < 6; i++) bodies.Add(await Body(proxy.Url + "/f"));
        Assert.Contains("A", bodies);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EveryDestinationDown_Answers503Fast_WithAClearBody(bool zeroCopy)
    {
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 1, \"MaxFails\": 2, \"FailTimeout\": \"10s\"",
            Destination("a", $"http://127.0.0.1:{RefusingPort()}/"), Destination("b", $"http://127.0.0.1:{RefusingPort()}/")));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var pools = proxy.Get<DestinationRegistry>();

        for (int i = 0; i < 10 && !(pools.Get("c", "a").IsBroken && pools.Get("c", "b").IsBroken); i++)
        {
            using var failed = await Client.GetAsync(proxy.Url + "/x");
            Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);
        }
        Assert.True(pools.Get("c", "a").IsBroken && pools.Get("c", "b").IsBroken);
        // The failing tries went through the configured forwarder. The all-down answer below involves none: with no
        // destination left, the zero-copy forwarder leaves the 503 to YARP's (counted path="yarp").
        PathAssert.ForwardedOn(proxy, zeroCopy);

        var clock = Stopwatch.StartNew();
        using var response = await Client.GetAsync(proxy.Url + "/x");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("no healthy destination", await response.Content.ReadAsStringAsync());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Status_AndMetrics_ShowPoolState()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        Write(dir, false, Cluster("c", "RoundRobin", "\"MaxFails\": 3", Destination("a", a.Url, "\"Weight\": 4, \"MaxConnections\": 7")));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        await Body(proxy.Url + "/x");

        using var status = JsonDocument.Parse(await Client.GetStringAsync(proxy.AdminUrl + "/status"));
        var destination = status.RootElement.GetProperty("clusters")[0].GetProperty("destinations")[0];
        var pool = destination.GetProperty("pool");
        Assert.Equal(4, pool.GetProperty("weight").GetInt32());
        Assert.Equal(4, pool.GetProperty("effectiveWeight").GetDouble());
        Assert.Equal(7, pool.GetProperty("maxConnections").GetInt32());
        Assert.Equal(0, pool.GetProperty("queueLength").GetInt32());
        Assert.Equal(1, pool.GetProperty("requests").GetInt64());
        Assert.Equal("closed", pool.GetProperty("breaker").GetString());
        Assert.True(pool.GetProperty("healthy").GetBoolean());

        var metrics = await Client.GetStringAsync(proxy.AdminUrl + "/metrics");
        Assert.Contains("zcproxy_upstream_effective_weight{cluster=\"c\",destination=\"a\"} 4", metrics);
        Assert.Contains("zcproxy_upstream_active_requests{cluster=\"c\",destination=\"a\"} 0", metrics);
        Assert.Contains("zcproxy_upstream_breaker_open{cluster=\"c\",destination=\"a\"} 0", metrics);
    }

    [Fact]
    public async Task EveryDestinationDown_IsLoggedOnceASecond_ByTheRealProcess()
    {
        using var dir = new ConfigDirectory();
        Write(dir, true, Cluster("c", "RoundRobin", "\"MaxFails\": 2, \"FailRatio\": 1, \"FailTimeout\": \"30s\"",
            Destination("a", $"http://127.0.0.1:{RefusingPort()}/")));
        using var process = ProxyProcess.Start(["--config", dir.MainFile]);
        var (url, _) = await process.WaitForListenersAsync();

        for (int i = 0; i < 2; i++) Assert.Equal(HttpStatusCode.BadGateway, (await Client.GetAsync(url + "/x")).StatusCode);
        await process.WaitForLineAsync("destination 'a' circuit breaker opened after 2 failures");
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 20; i++)
        {
            using var response = await Client.GetAsync(url + "/x");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Contains("no healthy destination", await response.Content.ReadAsStringAsync());
        }
        await process.WaitForLineAsync(@"cluster 'c': no destination available \(1 configured: a: circuit breaker open\)");
        // One line a second at most, however many requests: a slow machine may take a few seconds for the 20.
        Assert.InRange(process.CountLines("no destination available"), 1, (int)clock.Elapsed.TotalSeconds + 2);
        Assert.Equal(0, process.CountLines("No available destinations after load balancing"));
    }
}
