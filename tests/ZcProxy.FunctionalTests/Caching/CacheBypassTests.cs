using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// "CacheBypass": "$http_x_refresh $cookie_nocache $arg_nocache" (nginx's proxy_cache_bypass): such requests go to the
/// origin (X-Cache-Status: BYPASS) and their response replaces the entry; other requests are served from the cache.
/// </summary>
public class CacheBypassTests
{
    private static Task<CacheRig> RigAsync(bool zeroCopy, Func<int> next)
        => CacheRig.StartAsync(app => app.MapGet("/page", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            return $"version {next()}";
        }), zeroCopy: zeroCopy, routeMetadata: "\"CacheBypass\": \"$http_x_refresh $cookie_nocache $arg_nocache\"");

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task BypassConditions_GoToTheOrigin_AndReplaceTheEntry(bool zeroCopy)
    {
        int calls = 0;
        await using var rig = await RigAsync(zeroCopy, () => Interlocked.Increment(ref calls));
        Assert.Equal(("MISS", "version 1"), await rig.GetAsync("/page"));
        Assert.Equal(("HIT", "version 1"), await rig.GetAsync("/page"));
        // Empty or "0" does not bypass (nginx's rule).
        Assert.Equal(("HIT", "version 1"), await rig.GetAsync("/page", r => r.Headers.Add("X-Refresh", "0")));
        Assert.Equal(("BYPASS", "version 2"), await rig.GetAsync("/page", r => r.Headers.Add("X-Refresh", "1")));
        Assert.Equal(("HIT", "version 2"), await rig.GetAsync("/page")); // the bypassed response replaced the entry
        Assert.Equal(("BYPASS", "version 3"), await rig.GetAsync("/page", r => r.Headers.Add("Cookie", "a=b; nocache=yes")));
        Assert.Equal("BYPASS", (await rig.GetAsync("/page?nocache=1")).Status);
        Assert.Equal(("HIT", "version 3"), await rig.GetAsync("/page"));
        Assert.Equal(4, calls);
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Fact]
    public async Task Check_RejectsConditionsThatAreNotHttpCookieOrArg()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""
            { "Routes": {
                "ok": { "ClusterId": "c", "Match": { "Path": "/a" }, "Metadata": { "Cache": "on", "CacheBypass": "$http_pragma, $cookie_nocache $arg_x" } },
                "bad": { "ClusterId": "c", "Match": { "Path": "/b" }, "Metadata": { "Cache": "on", "CacheBypass": "$remote_addr" } },
                "empty": { "ClusterId": "c", "Match": { "Path": "/c" }, "Metadata": { "Cache": "on", "CacheBypass": "" } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """, """
            "Cache": { "Path": "cache" }
            """);
        var found = await dir.ValidateAsync();
        Assert.Equal(2, found.Count);
        Assert.Contains(found, e => e.JsonPath.EndsWith("bad.Metadata.CacheBypass", StringComparison.Ordinal) && e.Message.Contains("'$remote_addr'"));
        Assert.Contains(found, e => e.JsonPath.EndsWith("empty.Metadata.CacheBypass", StringComparison.Ordinal) && e.Message.Contains("at least one"));
    }
}
