using Microsoft.AspNetCore.Builder;
using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.Balancing;

/// <summary>Weights through the real proxy to real origins, on the zero-copy forwarder and on YARP's (PathAssert proves which).</summary>
public class WeightedBalancingTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Theory]
    [InlineData(false, "RoundRobin", 0.05)]
    [InlineData(true, "RoundRobin", 0.05)]
    [InlineData(false, "LeastRequests", 0.05)]
    [InlineData(true, "LeastRequests", 0.05)]
    [InlineData(false, "PowerOfTwoChoices", 0.08)]
    [InlineData(true, "PowerOfTwoChoices", 0.08)]
    public async Task Policy_HonoursWeights_Over1000Requests(bool zeroCopy, string policy, double tolerance)
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        await using var c = await TestOrigin.StartAsync("C");
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", policy, "",
            Destination("a", a.Url, "\"Weight\": 5"), Destination("b", b.Url, "\"Weight\": 3"), Destination("c", c.Url, "\"Weight\": 2")));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        const int total = 1000;
        for (int i = 0; i < total; i++) await Client.GetStringAsync(proxy.Url + "/w");

        output.WriteLine($"{policy}: A {a.Requests} B {b.Requests} C {c.Requests} of {total} (weights 5:3:2)");
        Assert.Equal(total, a.Requests + b.Requests + c.Requests);
        Assert.InRange(a.Requests / (double)total, 0.5 - tolerance, 0.5 + tolerance);
        Assert.InRange(b.Requests / (double)total, 0.3 - tolerance, 0.3 + tolerance);
        Assert.InRange(c.Requests / (double)total, 0.2 - tolerance, 0.2 + tolerance);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    /// <summary>Issue 2's done-when: RoundRobin with weights 3:1 within ±5% over 400 requests.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RoundRobin_Weights3To1_Within5Percent_Over400Requests(bool zeroCopy)
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "", Destination("a", a.Url, "\"Weight\": 3"), Destination("b", b.Url, "\"Weight\": 1")));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        const int total = 400;
        int servedByA = 0;
        for (int i = 0; i < total; i++)
            if ((await Client.GetStringAsync(proxy.Url + "/w")).StartsWith('A')) servedByA++;

        output.WriteLine($"RoundRobin 3:1: A {a.Requests} B {b.Requests} of {total}");
        Assert.Equal(total, a.Requests + b.Requests);
        Assert.Equal(a.Requests, servedByA);
        Assert.InRange(a.Requests / (double)total, 0.75 - 0.05, 0.75 + 0.05);
        Assert.InRange(b.Requests / (double)total, 0.25 - 0.05, 0.25 + 0.05);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ConsistentHash_SameHeader_SameOrigin(bool zeroCopy)
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        await using var c = await TestOrigin.StartAsync("C");
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "ConsistentHash", "\"HashKey\": \"Header:X-User\"",
            Destination("a", a.Url), Destination("b", b.Url), Destination("c", c.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        async Task<string> Ask(string user)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url + "/h") { Headers = { { "X-User", user } } };
            using var response = await Client.SendAsync(request);
            return (await response.Content.ReadAsStringAsync())[..1];
        }

        var first = new Dictionary<string, string>();
        for (int u = 0; u < 60; u++) first[$"user{u}"] = await Ask($"user{u}");
        for (int round = 0; round < 2; round++)
            foreach (var (user, origin) in first)
                Assert.Equal(origin, await Ask(user));
        Assert.Equal(3, first.Values.Distinct().Count());
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false, "LeastRequests")]
    [InlineData(true, "LeastRequests")]
    [InlineData(false, "PowerOfTwoChoices")]
    [InlineData(true, "PowerOfTwoChoices")]
    public async Task LoadAwarePolicies_AvoidTheDestinationWithARequestInFlight(bool zeroCopy, string policy)
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Hold(Microsoft.AspNetCore.Builder.WebApplication app) => app.MapGet("/hold", async () =>
        {
            await release.Task.WaitAsync(TimeSpan.FromSeconds(20));
            return "held";
        });
        await using var a = await TestOrigin.StartAsync("A", Hold);
        await using var b = await TestOrigin.StartAsync("B", Hold);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", policy, "", Destination("a", a.Url), Destination("b", b.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        try
        {
            var held = Client.GetAsync(proxy.Url + "/hold");
            await Poll.UntilAsync(() => a.Requests + b.Requests == 1, "one request held at an origin");
            var busy = a.Requests == 1 ? "A" : "B";
            for (int i = 0; i < 20; i++)
                Assert.NotEqual(busy, (await Client.GetStringAsync(proxy.Url + "/x"))[..1]);
            release.SetResult();
            Assert.Equal(System.Net.HttpStatusCode.OK, (await held).StatusCode);
        }
        finally
        {
            release.TrySetResult();
        }
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Fact]
    public async Task Reload_ChangesWeights_WithoutRestart()
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        Write(dir, false, Cluster("c", "RoundRobin", "", Destination("a", a.Url), Destination("b", b.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        for (int i = 0; i < 100; i++) await Client.GetStringAsync(proxy.Url + "/x");
        Assert.Equal(50, a.Requests);

        var lifecycle = proxy.Get<ZcProxy.Core.Configuration.ConfigLifecycle>();
        Write(dir, false, Cluster("c", "RoundRobin", "", Destination("a", a.Url, "\"Weight\": 3"), Destination("b", b.Url)));
        await Poll.UntilAsync(() => lifecycle.Last is { Applied: true }, "the reload with new weights");
        int before = a.Requests;
        for (int i = 0; i < 400; i++) await Client.GetStringAsync(proxy.Url + "/x");
        Assert.InRange(a.Requests - before, 280, 320);

        // A destination removed by a reload disappears from the pool metrics.
        var metrics = await Client.GetStringAsync(proxy.AdminUrl + "/metrics");
        Assert.Contains("zcproxy_upstream_effective_weight{cluster=\"c\",destination=\"b\"}", metrics);
        Write(dir, false, Cluster("c", "RoundRobin", "", Destination("a", a.Url, "\"Weight\": 3")));
        await Poll.UntilAsync(async () => !(await Client.GetStringAsync(proxy.AdminUrl + "/metrics")).Contains("destination=\"b\""),
            "destination b to leave the metrics");
        Assert.Contains("zcproxy_upstream_effective_weight{cluster=\"c\",destination=\"a\"} 3", await Client.GetStringAsync(proxy.AdminUrl + "/metrics"));
    }
}
