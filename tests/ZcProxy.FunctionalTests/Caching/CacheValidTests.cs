using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// A route's "CacheValid" (nginx's proxy_cache_valid): a freshness lifetime per status for responses whose origin says
/// nothing about freshness; explicit freshness from the origin still wins.
/// </summary>
public class CacheValidTests
{
    /// <summary>An origin whose answers carry no freshness information at all (no Cache-Control, Expires or Last-Modified), counting its calls per path.</summary>
    private static Task<CacheRig> RigAsync(bool zeroCopy, string routeMetadata, Dictionary<string, int> calls)
    {
        return CacheRig.StartAsync(app =>
        {
            foreach (var (path, status) in new[] { ("/ok", 200), ("/missing", 404), ("/broken", 500), ("/told", 200) })
                app.MapGet(path, (HttpContext c) =>
                {
                    lock (calls) calls[path] = calls.GetValueOrDefault(path) + 1;
                    c.Response.StatusCode = status;
                    if (path == "/told") c.Response.Headers.CacheControl = "max-age=0";
                    return $"{path} answer {calls[path]}";
                });
        }, zeroCopy: zeroCopy, routeMetadata: routeMetadata);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task WithoutCacheValid_ResponsesWithoutFreshness_GoToTheOriginEveryTime(bool zeroCopy)
    {
        var calls = new Dictionary<string, int>();
        await using var rig = await RigAsync(zeroCopy, "", calls);
        foreach (var path in new[] { "/ok", "/missing", "/broken" })
        {
            await rig.GetAsync(path);
            var second = await rig.GetAsync(path);
            Assert.NotEqual("HIT", second.Status);
            Assert.Equal(2, calls[path]);
        }
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task CacheValid_GivesListedStatusesTheirLifetime_OthersAndExplicitFreshnessUnchanged(bool zeroCopy)
    {
        var calls = new Dictionary<string, int>();
        await using var rig = await RigAsync(zeroCopy, "\"CacheValid\": \"200 302 10m; 404 1m\"", calls);
        Assert.Equal(("MISS", "/ok answer 1"), await rig.GetAsync("/ok"));
        Assert.Equal(("HIT", "/ok answer 1"), await rig.GetAsync("/ok"));
        Assert.Equal(("MISS", "/missing answer 1"), await rig.GetAsync("/missing"));
        Assert.Equal(("HIT", "/missing answer 1"), await rig.GetAsync("/missing"));
        // 500 is not listed: not stored (it has no freshness and is not heuristically cacheable).
        await rig.GetAsync("/broken");
        Assert.Equal("MISS", (await rig.GetAsync("/broken")).Status);
        Assert.Equal(2, calls["/broken"]);
        // The origin said max-age=0: its word wins over the route's default, so the entry is stale at once.
        await rig.GetAsync("/told");
        Assert.NotEqual("HIT", (await rig.GetAsync("/told")).Status);
        Assert.Equal(2, calls["/told"]);
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Fact]
    public async Task CacheValid_Any_StoresEvenA500_ForItsLifetime()
    {
        var calls = new Dictionary<string, int>();
        await using var rig = await RigAsync(zeroCopy: true, "\"CacheValid\": \"any 1m\"", calls);
        await rig.GetAsync("/broken");
        Assert.Equal(("HIT", "/broken answer 1"), await rig.GetAsync("/broken"));
        Assert.Equal(1, calls["/broken"]);
    }

    [Theory]
    [InlineData("200 302 10m; 404 1m", 200, 600)]
    [InlineData("200 302 10m; 404 1m", 404, 60)]
    [InlineData("5m", 301, 300)] // a duration alone: 200 301 302, as in nginx
    [InlineData("any 30s; 200 1h", 200, 3600)] // any comes last wherever it stands
    [InlineData("any 30s; 200 1h", 503, 30)]
    [InlineData("200 1h; 200 1m", 200, 3600)] // the first rule naming the status wins
    public void Parse_LifetimeByStatus(string text, int status, int seconds)
    {
        Assert.True(CacheValid.TryParse(text, out var rules, out var error), error);
        Assert.Equal(TimeSpan.FromSeconds(seconds), rules!.For(status));
    }

    [Theory]
    [InlineData("5m", 404)]
    [InlineData("200 10m", 500)]
    public void Parse_UnlistedStatus_HasNoLifetime(string text, int status)
    {
        Assert.True(CacheValid.TryParse(text, out var rules, out _));
        Assert.Null(rules!.For(status));
    }

    [Fact]
    public async Task Check_RejectsBadRules_WithTheirJsonPath()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""
            { "Routes": {
                "ok": { "ClusterId": "c", "Match": { "Path": "/a" }, "Metadata": { "Cache": "on", "CacheValid": "200 302 10m; 404 1m; any 5s" } },
                "nottime": { "ClusterId": "c", "Match": { "Path": "/b" }, "Metadata": { "Cache": "on", "CacheValid": "200 302" } },
                "badcode": { "ClusterId": "c", "Match": { "Path": "/c" }, "Metadata": { "Cache": "on", "CacheValid": "206 10m" } },
                "empty": { "ClusterId": "c", "Match": { "Path": "/d" }, "Metadata": { "Cache": "on", "CacheValid": " ; " } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """, """
            "Cache": { "Path": "cache" }
            """);
        var found = await dir.ValidateAsync();
        Assert.Equal(3, found.Count);
        Assert.Contains(found, e => e.JsonPath.EndsWith("nottime.Metadata.CacheValid", StringComparison.Ordinal) && e.Message.Contains("must end with a duration"));
        Assert.Contains(found, e => e.JsonPath.EndsWith("badcode.Metadata.CacheValid", StringComparison.Ordinal) && e.Message.Contains("'206'"));
        Assert.Contains(found, e => e.JsonPath.EndsWith("empty.Metadata.CacheValid", StringComparison.Ordinal) && e.Message.Contains("at least one rule"));
    }
}
