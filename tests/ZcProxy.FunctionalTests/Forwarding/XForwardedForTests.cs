using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// X-Forwarded-For appends the peer to the client's own value, as nginx's <c>$proxy_add_x_forwarded_for</c>, on both
/// forwarders and on the zero-copy forwarder's fast path (default transforms) and transform path alike; a route's own
/// "X-Forwarded": "Set" still replaces it.
/// </summary>
public class XForwardedForTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task TheClientsValue_GetsThePeerAppended_AndSetReplacesIt(bool zeroCopy)
    {
        // The origin answers with the X-Forwarded-For fields it got ("count|values"): one field is expected.
        await using var origin = await TestOrigin.StartAsync("O", app => app.MapGet("/{**rest}", (HttpRequest r) =>
            $"{r.Headers["X-Forwarded-For"].Count}|{r.Headers["X-Forwarded-For"]}"));
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": {
                "plain": { "ClusterId": "c", "Match": { "Path": "/plain" } },
                "transformed": { "ClusterId": "c", "Match": { "Path": "/transformed" }, "Transforms": [ { "RequestHeader": "X-Added", "Set": "1" } ] },
                "set": { "ClusterId": "c", "Match": { "Path": "/set" }, "Transforms": [ { "X-Forwarded": "Set" } ] } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "{{origin.Url}}" } } } } }
            """, $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" } """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        async Task<string> ForwardedFor(string path, params string[] clientValues)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url + path);
            foreach (var value in clientValues) request.Headers.TryAddWithoutValidation("X-Forwarded-For", value);
            using var response = await Client.SendAsync(request);
            response.EnsureSuccessStatusCode();
            var fields = (await response.Content.ReadAsStringAsync()).Split('|', 2);
            Assert.Equal("1", fields[0]);
            return fields[1];
        }

        foreach (var path in new[] { "/plain", "/transformed" })
        {
            Assert.Equal("127.0.0.1", await ForwardedFor(path));
            Assert.Equal("203.0.113.7, 127.0.0.1", await ForwardedFor(path, "203.0.113.7"));
            Assert.Equal("198.51.100.1, 203.0.113.7, 127.0.0.1", await ForwardedFor(path, "198.51.100.1, 203.0.113.7"));
        }
        Assert.Equal("127.0.0.1", await ForwardedFor("/set", "203.0.113.7")); // the route asked for YARP's Set
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }
}
