using System.Net;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.RateLimiting;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.RateLimiting;

/// <summary>
/// Named rate-limit policies (RateLimits) on real listeners, on both forwarding paths. The limiters are
/// System.Threading.RateLimiting's, which read Stopwatch time and take no TimeProvider: counting and refusing are
/// proven with windows of an hour (nothing can refill during a test), refilling with short windows and bounded polling.
/// </summary>
public class RateLimitTests
{
    private const string TwoRoutes = """
        "a": { "ClusterId": "c", "Match": { "Path": "/a/{**rest}" }, "RateLimiterPolicy": "p", "Transforms": [ { "PathRemovePrefix": "/a" } ] },
        "b": { "ClusterId": "c", "Match": { "Path": "/b/{**rest}" }, "RateLimiterPolicy": "p", "Transforms": [ { "PathRemovePrefix": "/b" } ] },
        "free": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } }
        """;

    private static string WriteConfig(ConfigDirectory dir, bool zeroCopy, string originUrl, string policy, string routes = TwoRoutes)
        => dir.WriteMain($$"""
            { "Routes": { {{routes}} },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "{{originUrl}}" } } } } }
            """,
            $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" }, "RateLimits": { "p": {{policy}} } """);

    private static async Task<(HttpStatusCode Status, string? RetryAfter, string Body)> GetAsync(string url, string? apiKey = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (apiKey is not null) request.Headers.Add("X-Api-Key", apiKey);
        using var response = await Client.SendAsync(request);
        var retryAfter = response.Headers.TryGetValues("Retry-After", out var values) ? values.Single() : null;
        return (response.StatusCode, retryAfter, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(false, "TokenBucket", "3600")]
    [InlineData(true, "TokenBucket", "3600")]
    [InlineData(false, "FixedWindow", "3600")]
    [InlineData(true, "FixedWindow", "3600")]
    [InlineData(false, "SlidingWindow", "3600")] // .NET's sliding window names the whole window, not its next step
    [InlineData(true, "SlidingWindow", "3600")]
    public async Task BeyondTheLimit_Gets429WithRetryAfter_AndTheOriginNeverSeesIt(bool zeroCopy, string kind, string retryAfter)
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url, $$"""{ "Kind": "{{kind}}", "Limit": 2, "Per": "1h", "Segments": 4 }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/1")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/2")).Status);
        var refused = await GetAsync(proxy.Url + "/a/3");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.Status);
        Assert.Equal(retryAfter, refused.RetryAfter);
        Assert.Contains("rate limit 'p'", refused.Body);
        Assert.Equal(2, origin.Requests);

        Assert.Equal(HttpStatusCode.TooManyRequests, (await GetAsync(proxy.Url + "/b/1")).Status); // one client address: one count across the policy's routes
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/free")).Status);              // a route without a policy is not limited
        Assert.Equal(2, proxy.Get<RateLimitMetrics>().Rejections("p").Value);
        Assert.Contains("zcproxy_rate_limit_rejections_total{policy=\"p\"} 2", await Client.GetStringAsync(proxy.AdminUrl + "/metrics"));
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TokenBucketBurst_AllowsLimitPlusBurstAtOnce(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url, """{ "Kind": "TokenBucket", "Limit": 1, "Burst": 3, "Per": "1h", "Status": 503 }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        for (int i = 0; i < 4; i++) Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/" + i)).Status);
        var refused = await GetAsync(proxy.Url + "/a/5");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.Status); // Status: nginx's limit_req_status
        Assert.Equal("3600", refused.RetryAfter);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false, "TokenBucket")]
    [InlineData(true, "TokenBucket")]
    [InlineData(false, "FixedWindow")]
    [InlineData(true, "FixedWindow")]
    [InlineData(false, "SlidingWindow")]
    [InlineData(true, "SlidingWindow")]
    public async Task AfterTheWindow_RequestsAreServedAgain(bool zeroCopy, string kind)
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url, $$"""{ "Kind": "{{kind}}", "Limit": 1, "Per": "400ms", "Segments": 2 }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        // Requests until one is refused (the first ones may straddle a window under load), then until one is served.
        await Poll.UntilAsync(async () => (await GetAsync(proxy.Url + "/a/x")).Status == HttpStatusCode.TooManyRequests, "a request refused");
        await Poll.UntilAsync(async () => (await GetAsync(proxy.Url + "/a/y")).Status == HttpStatusCode.OK, "the limit to refill");
        Assert.True(proxy.Get<RateLimitMetrics>().Rejections("p").Value >= 1);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task HeaderKey_CountsEachValueApart_AndDoesNotLimitRequestsWithoutIt(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url, """{ "Kind": "FixedWindow", "Key": "Header:X-Api-Key", "Limit": 1, "Per": "1h" }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/1", "k1")).Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await GetAsync(proxy.Url + "/a/2", "k1")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/3", "k2")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/4")).Status); // no key: not counted (nginx skips an empty key)
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/5")).Status);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RouteKey_CountsEachRouteApart(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url, """{ "Kind": "FixedWindow", "Key": "Route", "Limit": 1, "Per": "1h" }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/1")).Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await GetAsync(proxy.Url + "/a/2")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/b/1")).Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await GetAsync(proxy.Url + "/b/2")).Status);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Concurrency_RefusesBeyondTheRequestsInProgress_AndFreesThePermitWhenTheResponseIsDone(bool zeroCopy)
    {
        var holding = new HoldingOrigin();
        await using var origin = await TestOrigin.StartAsync("A", holding.Map);
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url, """{ "Kind": "Concurrency", "Limit": 1 }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var held = GetAsync(proxy.Url + "/a/hold");
        await Poll.UntilAsync(() => holding.InFlight == 1, "the first request at the origin");
        var refused = await GetAsync(proxy.Url + "/a/other");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.Status);
        Assert.Equal("1", refused.RetryAfter);

        holding.Release.SetResult();
        Assert.Equal((HttpStatusCode.OK, "held"), ((await held).Status, (await held).Body));
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/after")).Status);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Queue_HoldsARequestUntilAPermitIsFree(bool zeroCopy)
    {
        var holding = new HoldingOrigin();
        await using var origin = await TestOrigin.StartAsync("A", holding.Map);
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url, """{ "Kind": "Concurrency", "Limit": 1, "Queue": 1 }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var first = GetAsync(proxy.Url + "/a/hold");
        await Poll.UntilAsync(() => holding.InFlight == 1, "the first request at the origin");
        var queued = GetAsync(proxy.Url + "/a/queued");
        var policy = proxy.Get<RateLimitPolicies>().Find("p")!;
        await Poll.UntilAsync(() => policy.Waiting == 1, "the second request in the queue");
        var refused = await GetAsync(proxy.Url + "/a/third"); // the queue is full
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.Status);
        Assert.Contains("zcproxy_rate_limit_waiting{policy=\"p\"} 1", await Client.GetStringAsync(proxy.AdminUrl + "/metrics"));
        Assert.False(queued.IsCompleted);

        holding.Release.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await first).Status);
        Assert.Equal((HttpStatusCode.OK, "A GET /queued"), ((await queued).Status, (await queued).Body));
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Fact]
    public async Task Reload_AddsAndChangesPolicies_AndAnUnchangedPolicyKeepsItsCounts()
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        const string routes = """ "a": { "ClusterId": "c", "Match": { "Path": "/a/{**rest}" }, "RateLimiterPolicy": "p" }, "b": { "ClusterId": "c", "Match": { "Path": "/b/{**rest}" } } """;
        WriteConfig(dir, zeroCopy: true, origin.Url, """{ "Kind": "FixedWindow", "Limit": 1, "Per": "1h" }""", routes);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var runtime = proxy.Get<RuntimeOptions>();
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/1")).Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await GetAsync(proxy.Url + "/a/2")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/b/1")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/b/2")).Status);

        // Route b gets a new policy q; p is unchanged and keeps its count.
        dir.WriteMain($$"""
            { "Routes": { "a": { "ClusterId": "c", "Match": { "Path": "/a/{**rest}" }, "RateLimiterPolicy": "p" },
                          "b": { "ClusterId": "c", "Match": { "Path": "/b/{**rest}" }, "RateLimiterPolicy": "q" } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "{{origin.Url}}" } } } } }
            """, """ "AccessLog": { "Path": "off" }, "RateLimits": { "p": { "Kind": "FixedWindow", "Limit": 1, "Per": "1h" }, "q": { "Kind": "FixedWindow", "Limit": 1, "Per": "1h" } } """);
        await Poll.UntilAsync(async () => (await GetAsync(proxy.Url + "/b/3")).Status == HttpStatusCode.TooManyRequests, "route b to be limited by q");
        Assert.Equal(HttpStatusCode.TooManyRequests, (await GetAsync(proxy.Url + "/a/3")).Status);

        // p changed: a new limiter, a fresh count.
        dir.WriteMain($$"""
            { "Routes": { {{routes}} }, "Clusters": { "c": { "Destinations": { "d": { "Address": "{{origin.Url}}" } } } } }
            """, """ "AccessLog": { "Path": "off" }, "RateLimits": { "p": { "Kind": "FixedWindow", "Limit": 3, "Per": "1h" } } """);
        await Poll.UntilAsync(() => runtime.Current.RateLimits["p"].Limit == 3, "the reload");
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/4")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/5")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/a/6")).Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await GetAsync(proxy.Url + "/a/7")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(proxy.Url + "/b/4")).Status); // q removed with its route's reference
    }
}
