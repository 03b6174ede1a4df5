using System.Net;
using System.Text.Json;
using ZcProxy.Core.Configuration;
using ZcProxy.Tests.Balancing;

namespace ZcProxy.Tests.Admin;

/// <summary>The admin listener's runtime API: drain, disable, enable and weight of a destination, without a reload.</summary>
public class RuntimeApiTests
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { UseCookies = false });

    private static string Config(string destinations, string extra = "") => $$"""
        { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
          "Clusters": { "c": { "LoadBalancingPolicy": "RoundRobin", {{extra}} "Destinations": { {{destinations}} } } } }
        """;

    private static string Destination(string id, string url) => $"\"{id}\": {{ \"Address\": \"{url}\" }}";

    private static string Options(bool zeroCopy) => $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" } """;

    private static async Task<JsonElement> PostAsync(InProcessProxy proxy, string path, HttpMethod? method = null, string? body = null)
    {
        using var request = new HttpRequestMessage(method ?? HttpMethod.Post, proxy.AdminUrl + path);
        if (body is not null) request.Content = new StringContent(body);
        using var response = await Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Drain_SendsNoNewRequests_InFlightOnesFinish_EnableBringsItBack(bool zeroCopy)
    {
        var holding = new HoldingOrigin();
        await using var a = await TestOrigin.StartAsync("A", holding.Map);
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        dir.WriteMain(Config($"{Destination("a", a.Url)}, {Destination("b", b.Url)}"), Options(zeroCopy));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        // One request held at A (RoundRobin's first pick may be either: send until A holds one).
        var held = new List<Task<HttpResponseMessage>>();
        while (holding.InFlight == 0 && held.Count < 4)
        {
            held.Add(Client.GetAsync(proxy.Url + "/hold"));
            await Poll.UntilAsync(() => holding.InFlight + b.Requests >= held.Count, "the request to reach an origin");
        }
        Assert.Equal(1, holding.InFlight);

        var answer = await PostAsync(proxy, "/clusters/c/destinations/a/drain");
        Assert.Equal("draining", answer.GetProperty("pool").GetProperty("state").GetString());
        Assert.Equal(1, answer.GetProperty("activeRequests").GetInt32());

        int aBefore = a.Requests, bBefore = b.Requests;
        for (int i = 0; i < 10; i++) Assert.StartsWith("B ", await Client.GetStringAsync(proxy.Url + "/x"));
        Assert.Equal((aBefore, bBefore + 10), (a.Requests, b.Requests));

        // The request in flight at the drained destination finishes normally; health checks and status go on.
        holding.Release.SetResult();
        foreach (var t in held) Assert.Equal(HttpStatusCode.OK, (await t).StatusCode);
        var status = JsonDocument.Parse(await Client.GetStringAsync(proxy.AdminUrl + "/status")).RootElement;
        var aStatus = status.GetProperty("clusters")[0].GetProperty("destinations")[0];
        Assert.Equal(("a", "draining", 0), (aStatus.GetProperty("id").GetString(), aStatus.GetProperty("pool").GetProperty("state").GetString(), aStatus.GetProperty("activeRequests").GetInt32()));
        Assert.Contains("zcproxy_upstream_draining{cluster=\"c\",destination=\"a\"} 1", await Client.GetStringAsync(proxy.AdminUrl + "/metrics"));

        Assert.Equal("enabled", (await PostAsync(proxy, "/clusters/c/destinations/a/enable")).GetProperty("pool").GetProperty("state").GetString());
        aBefore = a.Requests;
        for (int i = 0; i < 10; i++) await Client.GetStringAsync(proxy.Url + "/x");
        Assert.Equal(aBefore + 5, a.Requests);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    /// <summary>HAProxy's DRAIN keeps sessions bound by affinity; its MAINT (disable) moves them too.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Drain_KeepsAffinityBoundRequests_DisableMovesThem(bool zeroCopy)
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        dir.WriteMain(Config($"{Destination("a", a.Url)}, {Destination("b", b.Url)}",
            """ "SessionAffinity": { "Enabled": true, "Policy": "Cookie", "AffinityKeyName": "zc-aff" }, """), Options(zeroCopy));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        using var first = await Client.GetAsync(proxy.Url + "/s");
        var pinned = (await first.Content.ReadAsStringAsync())[..1];
        var cookie = Assert.Single(first.Headers.GetValues("Set-Cookie"), c => c.StartsWith("zc-aff=", StringComparison.Ordinal)).Split(';')[0];
        var pinnedId = pinned.ToLowerInvariant();
        async Task<string> WithCookieAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url + "/s");
            request.Headers.Add("Cookie", cookie);
            using var response = await Client.SendAsync(request);
            return (await response.Content.ReadAsStringAsync())[..1];
        }

        await PostAsync(proxy, $"/clusters/c/destinations/{pinnedId}/drain");
        for (int i = 0; i < 5; i++) Assert.Equal(pinned, await WithCookieAsync());
        for (int i = 0; i < 5; i++) Assert.NotEqual(pinned, (await Client.GetStringAsync(proxy.Url + "/s"))[..1]);

        await PostAsync(proxy, $"/clusters/c/destinations/{pinnedId}/disable");
        for (int i = 0; i < 5; i++) Assert.NotEqual(pinned, await WithCookieAsync());
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Fact]
    public async Task StateAndWeight_SurviveAReload_AndAreDroppedWithTheDestination()
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        dir.WriteMain(Config($"{Destination("a", a.Url)}, {Destination("b", b.Url)}"), Options(true));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var lifecycle = proxy.Get<ConfigLifecycle>();

        await PostAsync(proxy, "/clusters/c/destinations/a/disable");
        var weighted = await PostAsync(proxy, "/clusters/c/destinations/b/weight", HttpMethod.Put, "7");
        Assert.Equal((7, 1), (weighted.GetProperty("pool").GetProperty("weight").GetInt32(), weighted.GetProperty("pool").GetProperty("configuredWeight").GetInt32()));

        // A reload that keeps both destinations (a new route) keeps their state.
        var reloads = lifecycle.Last;
        dir.WriteMain(Config($"{Destination("a", a.Url)}, {Destination("b", b.Url)}").Replace("\"Routes\": {", "\"Routes\": { \"r2\": { \"ClusterId\": \"c\", \"Match\": { \"Path\": \"/other\" } },"), Options(true));
        await Poll.UntilAsync(() => !ReferenceEquals(lifecycle.Last, reloads) && lifecycle.Last is { Applied: true }, "the reload");
        for (int i = 0; i < 6; i++) Assert.StartsWith("B ", await Client.GetStringAsync(proxy.Url + "/x"));
        var metrics = await Client.GetStringAsync(proxy.AdminUrl + "/metrics");
        Assert.Contains("zcproxy_upstream_disabled{cluster=\"c\",destination=\"a\"} 1", metrics);
        Assert.Contains("zcproxy_upstream_weight{cluster=\"c\",destination=\"b\"} 7", metrics);

        // Removed, then added back: it comes back in rotation, as configured.
        reloads = lifecycle.Last;
        dir.WriteMain(Config(Destination("b", b.Url)), Options(true));
        await Poll.UntilAsync(() => !ReferenceEquals(lifecycle.Last, reloads) && lifecycle.Last is { Applied: true }, "the reload without a");
        reloads = lifecycle.Last;
        dir.WriteMain(Config($"{Destination("a", a.Url)}, {Destination("b", b.Url)}"), Options(true));
        await Poll.UntilAsync(() => !ReferenceEquals(lifecycle.Last, reloads) && lifecycle.Last is { Applied: true }, "the reload with a again");
        var status = await Client.GetStringAsync(proxy.AdminUrl + "/status");
        Assert.DoesNotContain("\"disabled\"", status);
        int aBefore = a.Requests;
        for (int i = 0; i < 8; i++) await Client.GetStringAsync(proxy.Url + "/x");
        Assert.Equal(aBefore + 1, a.Requests); // b kept its weight 7: 7:1
    }

    /// <summary>The runtime API sits behind the admin guard: no drain from another site's page, a token when one is set.</summary>
    [Fact]
    public async Task RuntimeApi_IsGuarded_CrossSiteRefused_TokenRequired()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain(Config(Destination("a", a.Url)), Options(true));
        dir.WriteAtomically(dir.MainFile, File.ReadAllText(dir.MainFile)
            .Replace("\"Admin\": { \"Url\": \"http://127.0.0.1:0\" }", "\"Admin\": { \"Url\": \"http://127.0.0.1:0\", \"Token\": \"t0ken\" }"));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        async Task<HttpStatusCode> DrainAsync(Action<HttpRequestMessage> configure)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, proxy.AdminUrl + "/clusters/c/destinations/a/drain");
            configure(request);
            using var response = await Client.SendAsync(request);
            return response.StatusCode;
        }
        Assert.Equal(HttpStatusCode.Unauthorized, await DrainAsync(_ => { }));
        Assert.Equal(HttpStatusCode.Forbidden, await DrainAsync(r =>
        {
            r.Headers.Add("Authorization", "Bearer t0ken");
            r.Headers.Add("Origin", "http://evil.example");
        }));
        Assert.Contains("\"enabled\"", await Client.GetStringAsync(proxy.AdminUrl + "/status"));
        Assert.Equal(HttpStatusCode.OK, await DrainAsync(r => r.Headers.Add("Authorization", "Bearer t0ken")));
        Assert.Contains("\"draining\"", await Client.GetStringAsync(proxy.AdminUrl + "/status"));
    }

    [Fact]
    public async Task UnknownNamesAndBadWeights_AreClearErrors()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain(Config(Destination("a", a.Url)), Options(true));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        async Task<(HttpStatusCode, string)> SendAsync(HttpMethod method, string path, string? body = null)
        {
            using var request = new HttpRequestMessage(method, proxy.AdminUrl + path) { Content = body is null ? null : new StringContent(body) };
            using var response = await Client.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        var (status, text) = await SendAsync(HttpMethod.Post, "/clusters/nope/destinations/a/drain");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("no cluster 'nope'", text);
        (status, text) = await SendAsync(HttpMethod.Post, "/clusters/c/destinations/zz/disable");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("has no destination 'zz'", text);
        foreach (var bad in new[] { "0", "-1", "abc", "10001", "" })
        {
            (status, text) = await SendAsync(HttpMethod.Put, "/clusters/c/destinations/a/weight", bad);
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains("whole number from 1 to 10000", text);
        }
        Assert.DoesNotContain("\"weight\": 0", await Client.GetStringAsync(proxy.AdminUrl + "/status"));
    }
}
