using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Tests.Balancing;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// "CacheIgnoreHeaders": "Cache-Control Expires" (nginx's proxy_ignore_headers Cache-Control Expires): the origin's
/// directives and dates no longer keep a response out of the cache or decide its lifetime (CacheValid does); clients
/// still receive the fields.
/// </summary>
public class CacheIgnoreHeadersTests
{
    private static Task<CacheRig> RigAsync(bool zeroCopy, string routeMetadata, Dictionary<string, int> calls)
        => CacheRig.StartAsync(app =>
        {
            foreach (var (path, cacheControl, expires) in new[] { ("/nostore", "no-store, private", null), ("/expired", null, "0"), ("/both", "max-age=0", "0") })
                app.MapGet(path, (HttpContext c) =>
                {
                    lock (calls) calls[path] = calls.GetValueOrDefault(path) + 1;
                    if (cacheControl is not null) c.Response.Headers.CacheControl = cacheControl;
                    if (expires is not null) c.Response.Headers.Expires = expires;
                    return $"{path} answer {calls[path]}";
                });
        }, zeroCopy: zeroCopy, routeMetadata: routeMetadata);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Default_OriginDirectivesAndDatesDecide_NothingIsAHit(bool zeroCopy)
    {
        var calls = new Dictionary<string, int>();
        await using var rig = await RigAsync(zeroCopy, "\"CacheValid\": \"200 10m\"", calls);
        foreach (var path in new[] { "/nostore", "/expired", "/both" })
        {
            await rig.GetAsync(path);
            Assert.NotEqual("HIT", (await rig.GetAsync(path)).Status);
            Assert.Equal(2, calls[path]);
        }
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Ignored_StoredForTheRoutesLifetime_ClientsStillGetTheFields(bool zeroCopy)
    {
        var calls = new Dictionary<string, int>();
        await using var rig = await RigAsync(zeroCopy, "\"CacheValid\": \"200 10m\", \"CacheIgnoreHeaders\": \"Cache-Control, Expires\"", calls);
        foreach (var path in new[] { "/nostore", "/expired", "/both" })
        {
            Assert.Equal(("MISS", $"{path} answer 1"), await rig.GetAsync(path));
            var hit = await rig.SendAsync(path);
            Assert.Equal(("HIT", $"{path} answer 1"), (CacheRig.CacheStatusOf(hit), await hit.Content.ReadAsStringAsync()));
            Assert.Equal(1, calls[path]);
        }
        var both = await rig.SendAsync("/both");
        Assert.Equal("max-age=0", both.Headers.CacheControl?.ToString());
        Assert.True(both.Content.Headers.Contains("Expires"));
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Fact]
    public async Task OnlyExpiresIgnored_CacheControlStillDecides()
    {
        var calls = new Dictionary<string, int>();
        await using var rig = await RigAsync(true, "\"CacheValid\": \"200 10m\", \"CacheIgnoreHeaders\": \"Expires\"", calls);
        await rig.GetAsync("/expired");
        Assert.Equal("HIT", (await rig.GetAsync("/expired")).Status); // Expires: 0 ignored, CacheValid's 10m applies
        await rig.GetAsync("/both");
        Assert.NotEqual("HIT", (await rig.GetAsync("/both")).Status); // max-age=0 still counts
        Assert.Equal(2, calls["/both"]);
    }
}
