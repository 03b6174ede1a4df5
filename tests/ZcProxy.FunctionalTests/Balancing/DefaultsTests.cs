using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.Balancing;

/// <summary>
/// The pool defaults an nginx operator relies on, with no pool Metadata at all: a request that never reached a dead
/// destination goes to the next one (proxy_next_upstream error timeout), and one failure takes the dead destination
/// out for 10 s (max_fails=1 fail_timeout=10s). Both forwarding paths.
/// </summary>
public class DefaultsTests
{
    private static void EchoPost(WebApplication app)
        => app.MapPost("/echo", async (HttpRequest r) => "B " + await new StreamReader(r.Body).ReadToEndAsync());

    /// <summary>A cluster "c" exactly as a newcomer writes it: destinations, nothing else.</summary>
    private static string BareCluster(params string[] destinations) => $"\"c\": {{ \"Destinations\": {{ {string.Join(", ", destinations)} }} }}";

    private static JsonElement PoolOf(JsonDocument status, string destination)
        => status.RootElement.GetProperty("clusters")[0].GetProperty("destinations").EnumerateArray()
            .Single(d => d.GetProperty("id").GetString() == destination).GetProperty("pool");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OneOfTwoDestinationsRefusing_EveryRequestSucceeds_AndTheDeadOneIsShownUnhealthy(bool zeroCopy)
    {
        await using var live = await TestOrigin.StartAsync("B", EchoPost);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, BareCluster(Destination("a", $"http://127.0.0.1:{RefusingPort()}/"), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var body = new string('x', 20_000) + "end";
        for (int i = 0; i < 10; i++)
        {
            using var get = await Client.GetAsync(proxy.Url + "/r");
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            Assert.Equal("B GET /r", await get.Content.ReadAsStringAsync());
            using var post = await Client.PostAsync(proxy.Url + "/echo", new StringContent(body + i));
            Assert.Equal(HttpStatusCode.OK, post.StatusCode);
            Assert.Equal("B " + body + i, await post.Content.ReadAsStringAsync());
        }
        Assert.Equal(20, live.Requests);
        Assert.True(proxy.Get<ProxyMetrics>().CounterValue("zcproxy_upstream_retries_total", ("reason", "connect_error")) >= 1);

        using var status = JsonDocument.Parse(await Client.GetStringAsync(proxy.AdminUrl + "/status"));
        var dead = PoolOf(status, "a");
        Assert.False(dead.GetProperty("healthy").GetBoolean());
        Assert.Equal("open", dead.GetProperty("breaker").GetString());
        Assert.True(dead.GetProperty("failures").GetInt64() >= 1);
        Assert.True(PoolOf(status, "b").GetProperty("healthy").GetBoolean());

        var metrics = (await Client.GetStringAsync(proxy.AdminUrl + "/metrics")).Split('\n');
        Assert.Contains("zcproxy_upstream_healthy{cluster=\"c\",destination=\"a\"} 0", metrics);
        Assert.Contains("zcproxy_upstream_breaker_open{cluster=\"c\",destination=\"a\"} 1", metrics);
        Assert.Contains("zcproxy_upstream_healthy{cluster=\"c\",destination=\"b\"} 1", metrics);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RetriesAndBreakerOff_ADeadDestinationCostsItsShare_AndStaysInThePool(bool zeroCopy)
    {
        await using var live = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"Retries\": 0, \"MaxFails\": 0",
            Destination("a", $"http://127.0.0.1:{RefusingPort()}/"), Destination("b", live.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var statuses = new List<HttpStatusCode>();
        for (int i = 0; i < 10; i++)
        {
            using var response = await Client.GetAsync(proxy.Url + "/r");
            statuses.Add(response.StatusCode);
        }
        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.BadGateway));
        Assert.Equal(0, proxy.Get<RetryMetrics>().Total);
        using var status = JsonDocument.Parse(await Client.GetStringAsync(proxy.AdminUrl + "/status"));
        Assert.Equal("off", PoolOf(status, "a").GetProperty("breaker").GetString());
        Assert.True(PoolOf(status, "a").GetProperty("healthy").GetBoolean());
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ALoneDestination_IsNotTakenOutByTheDefaultBreaker(bool zeroCopy)
    {
        using var reserved = new ReservedPort(); // refuses until the origin below starts on it; no other test gets it
        int port = reserved.Port;
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, BareCluster(Destination("a", $"http://127.0.0.1:{port}/")));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        using (var failed = await Client.GetAsync(proxy.Url + "/r"))
            Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);
        // Like nginx with a single server: no max_fails. It serves as soon as it is back, not 10 s later.
        await using var back = await TestOrigin.StartAsync("A", port: port);
        using var served = await Client.GetAsync(proxy.Url + "/r");
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal("A GET /r", await served.Content.ReadAsStringAsync());
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }
}
