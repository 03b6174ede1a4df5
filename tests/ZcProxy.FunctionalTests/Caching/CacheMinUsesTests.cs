using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>"CacheMinUses": "3" (nginx's proxy_cache_min_uses 3): a response is stored on the third miss of its key.</summary>
public class CacheMinUsesTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task StoredOnlyOnTheNthMiss(bool zeroCopy)
    {
        int calls = 0;
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/{name}", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            return $"{c.Request.RouteValues["name"]} {Interlocked.Increment(ref calls)}";
        }), zeroCopy: zeroCopy, routeMetadata: "\"CacheMinUses\": \"3\"");
        Assert.Equal(("MISS", "a 1"), await rig.GetAsync("/a"));
        Assert.Equal(("MISS", "b 2"), await rig.GetAsync("/b")); // counted per key
        Assert.Equal(("MISS", "a 3"), await rig.GetAsync("/a"));
        Assert.Empty(rig.EntryFiles());
        Assert.Equal(("MISS", "a 4"), await rig.GetAsync("/a")); // the third miss of /a is stored
        Assert.Equal(("HIT", "a 4"), await rig.GetAsync("/a"));
        Assert.Equal(("MISS", "b 5"), await rig.GetAsync("/b"));
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Fact]
    public void CountMiss_DropsTheCountOnceReached()
    {
        var uses = new CacheMinUses();
        Assert.Equal([false, true, false, true], new[] { uses.CountMiss("k", 2), uses.CountMiss("k", 2), uses.CountMiss("k", 2), uses.CountMiss("k", 2) });
        Assert.True(uses.CountMiss("other", 1));
    }

    [Fact]
    public async Task Check_RejectsWhatIsNotAPositiveWholeNumber()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""
            { "Routes": {
                "ok": { "ClusterId": "c", "Match": { "Path": "/a" }, "Metadata": { "Cache": "on", "CacheMinUses": "2" } },
                "zero": { "ClusterId": "c", "Match": { "Path": "/b" }, "Metadata": { "Cache": "on", "CacheMinUses": "0" } },
                "word": { "ClusterId": "c", "Match": { "Path": "/c" }, "Metadata": { "Cache": "on", "CacheMinUses": "two" } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """, """
            "Cache": { "Path": "cache" }
            """);
        var found = await dir.ValidateAsync();
        Assert.Equal(2, found.Count);
        Assert.All(found, e => Assert.EndsWith("Metadata.CacheMinUses", e.JsonPath, StringComparison.Ordinal));
    }
}
