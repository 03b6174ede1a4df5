using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.Balancing;

/// <summary>
/// proxy_next_upstream: a refusing, resetting ("killed"), hanging or failing destination beside a live one,
/// round-robin. Tests that need the bad destination met again turn its breaker off ("MaxFails": 0). Each runs on the
/// zero-copy forwarder and on YARP's (PathAssert proves which); the steps only look at IForwarderErrorFeature, the
/// status and Response.HasStarted, which both forwarders report alike.
/// </summary>
public class RetryTests
{
    private static void EchoPost(WebApplication app)
        => app.MapPost("/echo", async (HttpRequest r) => "B " + await new StreamReader(r.Body).ReadToEndAsync());

    private static long Retries(InProcessProxy proxy, string reason)
        => proxy.Get<ProxyMetrics>().CounterValue("zcproxy_upstream_retries_total", ("reason", reason));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ARefusingDestination_GetAndPostAreBothRetried_TheRequestNeverReachedIt(bool zeroCopy)
    {
        var refusing = $"http://127.0.0.1:{RefusingPort()}/";
        await using var live = await TestOrigin.StartAsync("B", EchoPost);
        using var dir = new ConfigDirectory();
        // Breaker off: every other request meets the refusing destination first.
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"MaxFails\": 0", Destination("a", refusing), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        for (int i = 0; i < 10; i++)
        {
            using var response = await Client.GetAsync(proxy.Url + "/r");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("B GET /r", await response.Content.ReadAsStringAsync());
        }
        var body = new string('p', 100_000) + "end"; // above RetryBodyLimit: never buffered, and needs not be
        for (int i = 0; i < 10; i++)
        {
            using var response = await Client.PostAsync(proxy.Url + "/echo", new StringContent(body));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("B " + body, await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(10, Retries(proxy, "connect_error"));
        Assert.Equal(0, Retries(proxy, "error"));
        Assert.Equal(20, live.Requests);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ADestinationThatTookTheRequestAndReset_GetIsRetried_PostIsNot(bool zeroCopy)
    {
        await using var dead = new ResettingOrigin();
        await using var live = await TestOrigin.StartAsync("B", EchoPost);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"MaxFails\": 0", Destination("a", dead.Url), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        for (int i = 0; i < 10; i++)
        {
            using var response = await Client.GetAsync(proxy.Url + "/r");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("B GET /r", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(5, Retries(proxy, "error")); // every other GET met the dead destination first
        var statuses = new List<HttpStatusCode>();
        for (int i = 0; i < 10; i++)
        {
            using var response = await Client.PostAsync(proxy.Url + "/echo", new StringContent("payload"));
            statuses.Add(response.StatusCode);
        }
        // Round-robin alternates: the POSTs the dead destination took fail instead of being repeated.
        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.BadGateway));
        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(5, Retries(proxy, "error"));
        Assert.Equal(0, Retries(proxy, "connect_error"));
        Assert.Equal(10, dead.Accepted);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task DefaultConfig_APostWhoseBytesReachedAFailingDestination_IsNotRetried(bool zeroCopy)
    {
        await using var dead = new ResettingOrigin(); // reads (part of) the request, then resets
        await using var live = await TestOrigin.StartAsync("B", EchoPost);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "", Destination("a", dead.Url), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var statuses = new List<HttpStatusCode>();
        for (int i = 0; i < 4; i++)
        {
            using var response = await Client.PostAsync(proxy.Url + "/echo", new StringContent("payload " + i));
            statuses.Add(response.StatusCode);
        }
        // The one POST the dead destination took is answered 502, not sent to the live one; its failure takes the
        // dead destination out (default breaker), so the others all go to the live one.
        Assert.Equal(1, dead.Accepted);
        Assert.Equal(1, statuses.Count(s => s == HttpStatusCode.BadGateway));
        Assert.Equal(3, live.Requests);
        Assert.Equal(0, proxy.Get<RetryMetrics>().Total);
        Assert.True(proxy.Get<DestinationRegistry>().Get("c", "a").IsBroken);
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
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 1, \"RetryNonIdempotent\": true, \"RetryBodyLimit\": \"64KiB\", \"MaxFails\": 0",
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
        Assert.Equal(requests / 2, proxy.Get<RetryMetrics>().Total);
        var metrics = proxy.Get<ZcProxy.Core.Diagnostics.ProxyMetrics>();
        long Spliced() => metrics.GetBodyBytes(ZcProxy.Core.Diagnostics.BodyMechanism.Splice, ZcProxy.Core.Diagnostics.BodyDirection.Response);
        long Copied() => metrics.GetBodyBytes(ZcProxy.Core.Diagnostics.BodyMechanism.Copy, ZcProxy.Core.Diagnostics.BodyDirection.Response);
        if (zeroCopy)
        {
            // The served bodies are spliced but for the bytes that came with their heads (copied); the held-back ones
            // are copied through the gate (and dropped there).
            long bodies = (long)(requests + requests / 2) * size;
            await Poll.UntilAsync(() => Spliced() + Copied() >= bodies, "every body to be counted");
            Assert.Equal(bodies, Spliced() + Copied());
            Assert.InRange(Spliced(), (long)requests * (size - ZcProxy.Core.Upstream.UpstreamConnection.HeadReadSize), (long)requests * size);
        }
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
            await release.Task.WaitAsync(TimeSpan.FromSeconds(30));
            return "A late";
        }));
        await using var live = await TestOrigin.StartAsync("B");
        // The timeout applies to the live destination too: on a loaded machine a first (cold) answer took longer
        // than 0.4 s, timed out and went to the hanging one. So B answers once before (its first-request cost is
        // paid), and the timeout is one no healthy answer on loopback comes near, while A never answers at all.
        Assert.Equal("B GET /warm", await Client.GetStringAsync(live.Url + "/warm"));
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { "c": { "LoadBalancingPolicy": "RoundRobin", "Metadata": { "Retries": 1, "RetryOn": "timeout" },
                                   "HttpRequest": { "ActivityTimeout": "00:00:02" },
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
        await using var live = await TestOrigin.StartAsync("B", EchoPost);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 1, \"ConnectTimeout\": \"300ms\", \"MaxFails\": 0",
            Destination("a", blackhole.Url), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 4; i++)
        {
            using var response = await Client.GetAsync(proxy.Url + "/c");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("B GET /c", await response.Content.ReadAsStringAsync());
        }
        for (int i = 0; i < 2; i++) // nothing was sent to the blackhole: a POST goes on too
        {
            using var response = await Client.PostAsync(proxy.Url + "/echo", new StringContent("posted"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("B posted", await response.Content.ReadAsStringAsync());
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(12), $"took {clock.Elapsed}");
        Assert.Equal(3, Retries(proxy, "connect_timeout")); // two of the four GETs and one of the two POSTs
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task FailureAfterResponseBytesReachedTheClient_IsNotRetried(bool zeroCopy)
    {
        // A dies mid-body only once the client holds the response head: a fixed pause before the abort let the reset
        // overtake the head on a loaded machine (the proxy then saw a failure before any byte reached the client).
        var headAtClient = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var breaking = await TestOrigin.StartAsync("A", app => app.MapGet("/p", async (HttpContext c) =>
        {
            c.Response.ContentLength = 100_000;
            await c.Response.Body.WriteAsync(new byte[1000]);
            await c.Response.Body.FlushAsync();
            await headAtClient.Task.WaitAsync(TimeSpan.FromSeconds(30));
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
            using var response = await Client.GetAsync(proxy.Url + "/p", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            if (response.Content.Headers.ContentLength == 100_000) // A's head: now let A die
            {
                headAtClient.TrySetResult();
                var failure = await Record.ExceptionAsync(() => response.Content.ReadAsByteArrayAsync());
                Assert.True(failure is HttpRequestException or IOException, $"expected a truncated body, got {failure?.GetType().Name ?? "all of it"}");
                truncated++;
            }
            else Assert.Equal("B GET /p", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(1, truncated);
        Assert.Equal(1, breaking.Requests);
        Assert.Equal(1, live.Requests);
        Assert.Equal(0, proxy.Get<RetryMetrics>().Total);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }
}
