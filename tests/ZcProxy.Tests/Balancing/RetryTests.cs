using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.Balancing;

/// <summary>
/// proxy_next_upstream: a refusing or a resetting ("killed") destination beside a live one, round-robin, Retries 1.
/// Each runs on the zero-copy forwarder and on YARP's (PathAssert proves which); the steps only look at
/// IForwarderErrorFeature, the status and Response.HasStarted, which both forwarders report alike.
/// </summary>
public class RetryTests
{
    private static void EchoPost(WebApplication app)
        => app.MapPost("/echo", async (HttpRequest r) => "B " + await new StreamReader(r.Body).ReadToEndAsync());

    private static async Task<(IAsyncDisposable Dead, string Url, Func<int> Accepted)> DeadOrigin(string kind)
    {
        if (kind == "killed")
        {
            var resetting = new ResettingOrigin();
            return (resetting, resetting.Url, () => resetting.Accepted);
        }
        var refusing = await TestOrigin.StartAsync("DEAD");
        var url = refusing.Url;
        await refusing.DisposeAsync(); // nothing listens there any more: connect is refused
        return (refusing, url, () => 0);
    }

    [Theory]
    [InlineData(false, "refusing")]
    [InlineData(true, "refusing")]
    [InlineData(false, "killed")]
    [InlineData(true, "killed")]
    public async Task Get_IsRetriedOnTheNextDestination_PostIsNot(bool zeroCopy, string kind)
    {
        var (dead, deadUrl, _) = await DeadOrigin(kind);
        await using var _d = dead;
        await using var live = await TestOrigin.StartAsync("B", EchoPost);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 1", Destination("a", deadUrl), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        for (int i = 0; i < 10; i++)
        {
            using var response = await Client.GetAsync(proxy.Url + "/r");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("B GET /r", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(5, proxy.Get<ZcProxy.Core.Diagnostics.RetryMetrics>().Total); // every other GET met the dead destination first
        var statuses = new List<HttpStatusCode>();
        for (int i = 0; i < 10; i++)
        {
            using var response = await Client.PostAsync(proxy.Url + "/echo", new StringContent("payload"));
            statuses.Add(response.StatusCode);
        }
        // Round-robin alternates: the POSTs that went to the dead destination fail instead of being repeated.
        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.BadGateway));
        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.OK));
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Post_IsRetriedWithItsBody_WhenRetryNonIdempotent(bool zeroCopy)
    {
        await using var dead = new ResettingOrigin();
        await using var live = await TestOrigin.StartAsync("B", EchoPost);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 1, \"RetryNonIdempotent\": true, \"RetryBodyLimit\": \"64KiB\"",
            Destination("a", dead.Url), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var body = new string('x', 20_000) + "end";
        for (int i = 0; i < 6; i++)
        {
            using var response = await Client.PostAsync(proxy.Url + "/echo", new StringContent(body));
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            Assert.Equal("B " + body, await response.Content.ReadAsStringAsync());
        }
        Assert.True(dead.Accepted >= 3, $"the dead destination saw {dead.Accepted} tries");
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RetryOnStatus_HidesTheFailedResponse_AndServesTheNextDestination(bool zeroCopy)
    {
        await using var busy = await TestOrigin.StartAsync("A", app => app.MapGet("/s", (HttpContext c) =>
        {
            c.Response.StatusCode = 503;
            return "A is busy";
        }));
        await using var live = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 2, \"RetryOn\": \"error,timeout,503\"",
            Destination("a", busy.Url), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        for (int i = 0; i < 10; i++)
        {
            using var response = await Client.GetAsync(proxy.Url + "/s");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("B GET /s", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(5, busy.Requests);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RetryOnStatus_HoldsBackASpliceSizedFailedResponse_AndSplicesTheNextOne(bool zeroCopy)
    {
        // Both bodies are above ZeroCopy.SpliceThreshold (64 KiB): on the zero-copy path the held-back 503 must not
        // be spliced past the retry gate, and the 200 that follows is spliced.
        const int size = 128 * 1024;
        static void Big(WebApplication app, int status, char fill) => app.MapGet("/big", async (HttpContext c) =>
        {
            c.Response.StatusCode = status;
            c.Response.ContentLength = size;
            await c.Response.Body.WriteAsync(System.Text.Encoding.ASCII.GetBytes(new string(fill, size)));
        });
        await using var busy = await TestOrigin.StartAsync("A", app => Big(app, 503, 'a'));
        await using var live = await TestOrigin.StartAsync("B", app => Big(app, 200, 'b'));
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 1, \"RetryOn\": \"503\"",
            Destination("a", busy.Url), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        const int requests = 4;
        for (int i = 0; i < requests; i++)
        {
            using var response = await Client.GetAsync(proxy.Url + "/big");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.Content.ReadAsStringAsync();
            Assert.Equal(size, body.Length);
            Assert.True(body.All(ch => ch == 'b'), "only the live destination's body reached the client");
        }
        Assert.Equal(requests / 2, busy.Requests);
        Assert.Equal(requests, live.Requests);
        Assert.Equal(requests / 2, proxy.Get<ZcProxy.Core.Diagnostics.RetryMetrics>().Total);
        var metrics = proxy.Get<ZcProxy.Core.Diagnostics.ProxyMetrics>();
        long Spliced() => metrics.GetBodyBytes(ZcProxy.Core.Diagnostics.BodyMechanism.Splice, ZcProxy.Core.Diagnostics.BodyDirection.Response);
        if (zeroCopy)
            await Poll.UntilAsync(() => Spliced() == (long)requests * size, "the served bodies to be counted as spliced (and only those)");
        else
            Assert.Equal(0, Spliced());
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RetryOnStatus_LastDestinationsAnswerIsPassedOn(bool zeroCopy)
    {
        await using var busy = await TestOrigin.StartAsync("A", app => app.MapGet("/s", (HttpContext c) =>
        {
            c.Response.StatusCode = 503;
            return "A is busy";
        }));
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 2, \"RetryOn\": \"503\"", Destination("a", busy.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        using var response = await Client.GetAsync(proxy.Url + "/s");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("A is busy", await response.Content.ReadAsStringAsync());
        Assert.Equal(1, busy.Requests);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TimeoutBeforeTheResponseHead_IsRetriedOnTheNextDestination(bool zeroCopy)
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var hanging = await TestOrigin.StartAsync("A", app => app.MapGet("/t", async () =>
        {
            await release.Task.WaitAsync(TimeSpan.FromSeconds(20));
            return "A late";
        }));
        await using var live = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { "c": { "LoadBalancingPolicy": "RoundRobin", "Metadata": { "Retries": 1, "RetryOn": "timeout" },
                                   "HttpRequest": { "ActivityTimeout": "00:00:00.4" },
                                   "Destinations": { {{Destination("a", hanging.Url)}}, {{Destination("b", live.Url)}} } } } }
            """, $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" } """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        try
        {
            for (int i = 0; i < 2; i++)
            {
                using var response = await Client.GetAsync(proxy.Url + "/t");
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("B GET /t", await response.Content.ReadAsStringAsync());
            }
            Assert.Equal(1, hanging.Requests);
        }
        finally
        {
            release.SetResult();
        }
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ConnectTimeout_FailsFast_AndIsRetriedOnTheNextDestination(bool zeroCopy)
    {
        using var blackhole = new BlackholeOrigin();
        Assert.True(await blackhole.ConnectHangsAsync(TimeSpan.FromMilliseconds(300)), "precondition: connects to the blackhole hang");
        await using var live = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 1, \"ConnectTimeout\": \"300ms\"",
            Destination("a", blackhole.Url), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 4; i++)
        {
            using var response = await Client.GetAsync(proxy.Url + "/c");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("B GET /c", await response.Content.ReadAsStringAsync());
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"took {clock.Elapsed}");
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(500), "two of the four requests waited for the connect timeout");
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task FailureAfterResponseBytesReachedTheClient_IsNotRetried(bool zeroCopy)
    {
        await using var breaking = await TestOrigin.StartAsync("A", app => app.MapGet("/p", async (HttpContext c) =>
        {
            c.Response.ContentLength = 100_000;
            await c.Response.Body.WriteAsync(new byte[1000]);
            await c.Response.Body.FlushAsync();
            await Task.Delay(50);
            c.Abort(); // dies mid-body
        }));
        await using var live = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 2, \"RetryOn\": \"error,timeout,500,502\"",
            Destination("a", breaking.Url), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        int truncated = 0;
        for (int i = 0; i < 2; i++)
        {
            try
            {
                var body = await Client.GetStringAsync(proxy.Url + "/p");
                Assert.Equal("B GET /p", body);
            }
            catch (HttpRequestException) { truncated++; }
        }
        Assert.Equal(1, truncated);
        Assert.Equal(1, breaking.Requests);
        Assert.Equal(1, live.Requests);
        Assert.Equal(0, proxy.Get<ZcProxy.Core.Diagnostics.RetryMetrics>().Total);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }
}
