using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.Balancing;

/// <summary>YARP's session affinity through the real proxy, on both forwarders.</summary>
public class SessionAffinityTests
{
    /// <summary>HashCookie needs System.IO.Hashing (Yarp 2.3.0's dependency): the cookie set on the first answer pins later requests.</summary>
    [Theory]
    [InlineData(false, "HashCookie")]
    [InlineData(true, "HashCookie")]
    [InlineData(true, "Cookie")]
    public async Task AffinityCookie_PinsLaterRequestsToOneDestination(bool zeroCopy, string policy)
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { "c": { "LoadBalancingPolicy": "RoundRobin",
                                   "SessionAffinity": { "Enabled": true, "Policy": "{{policy}}", "AffinityKeyName": "zc-aff" },
                                   "Destinations": { {{Destination("a", a.Url)}}, {{Destination("b", b.Url)}} } } } }
            """, $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" } """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        using var client = new HttpClient(new SocketsHttpHandler { UseCookies = false });
        using var first = await client.GetAsync(proxy.Url + "/s");
        var firstBody = await first.Content.ReadAsStringAsync();
        var cookie = Assert.Single(first.Headers.GetValues("Set-Cookie"), c => c.StartsWith("zc-aff=", StringComparison.Ordinal)).Split(';')[0];

        for (int i = 0; i < 20; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url + "/s");
            request.Headers.Add("Cookie", cookie);
            using var response = await client.SendAsync(request);
            Assert.Equal(firstBody[0], (await response.Content.ReadAsStringAsync())[0]);
        }
        // Without the cookie RoundRobin alternates, so the pinning above is the cookie's doing.
        Assert.True(a.Requests == 21 || b.Requests == 21, $"A {a.Requests} B {b.Requests}");
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }
}
