using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ZcProxy.Tests.Caching;

/// <summary>RFC 9111 §4.2 freshness and age, and the request directives of §5.2.1.</summary>
public class CacheFreshnessTests
{
    private static string Date(TimeSpan fromNow) => (DateTimeOffset.UtcNow + fromNow).ToString("r");

    private static Task<CacheRig> OriginWith(Action<HttpContext> headers)
        => CacheRig.StartAsync(app => app.MapGet("/r", (HttpContext c) => { headers(c); return "body"; }));

    [Theory]
    [InlineData("max-age=60", null, "HIT")]
    [InlineData("max-age=0, s-maxage=60", null, "HIT")]        // s-maxage wins in a shared cache
    [InlineData("max-age=60, s-maxage=0", null, "EXPIRED")]
    [InlineData("max-age=60", "100", "EXPIRED")]                 // Age from upstream counts
    [InlineData("max-age=600", "100", "HIT")]
    public async Task ExplicitLifetime_AndUpstreamAge(string cacheControl, string? age, string expected)
    {
        await using var rig = await OriginWith(c =>
        {
            c.Response.Headers.CacheControl = cacheControl;
            if (age is not null) c.Response.Headers.Age = age;
        });
        await rig.GetAsync("/r");
        var second = await rig.SendAsync("/r");
        Assert.Equal(expected, CacheRig.CacheStatusOf(second));
        if (expected == "HIT") Assert.True(second.Headers.Age >= TimeSpan.FromSeconds(int.Parse(age ?? "0")));
    }

    [Theory]
    [InlineData(60, "HIT")]
    [InlineData(-60, "EXPIRED")]
    public async Task Expires_RelativeToDate(int expiresInSeconds, string expected)
    {
        await using var rig = await OriginWith(c =>
        {
            c.Response.Headers.Date = Date(TimeSpan.Zero);
            c.Response.Headers.Expires = Date(TimeSpan.FromSeconds(expiresInSeconds));
        });
        await rig.GetAsync("/r");
        Assert.Equal(expected, (await rig.GetAsync("/r")).Status);
    }

    [Fact]
    public async Task InvalidExpires_MeansAlreadyExpired()
    {
        await using var rig = await OriginWith(c => c.Response.Headers.Expires = "0");
        await rig.GetAsync("/r");
        Assert.Equal("EXPIRED", (await rig.GetAsync("/r")).Status);
    }

    [Fact]
    public async Task Heuristic_FromLastModified_WhenNoExplicitLifetime()
    {
        await using var rig = await OriginWith(c =>
        {
            c.Response.Headers.Date = Date(TimeSpan.Zero);
            c.Response.Headers.LastModified = Date(TimeSpan.FromDays(-10));
        });
        await rig.GetAsync("/r");
        Assert.Equal("HIT", (await rig.GetAsync("/r")).Status);
    }

    [Fact]
    public async Task NoLifetimeAtAll_StoredButValidatedEveryTime()
    {
        await using var rig = await OriginWith(_ => { });
        await rig.GetAsync("/r");
        Assert.Equal("EXPIRED", (await rig.GetAsync("/r")).Status);
        Assert.Equal(2, rig.Origin.Requests);
    }

    [Theory]
    [InlineData("no-cache", "EXPIRED")]
    [InlineData("max-age=0", "EXPIRED")]
    [InlineData("min-fresh=120", "EXPIRED")]
    [InlineData("max-age=3600", "HIT")]
    [InlineData("min-fresh=10", "HIT")]
    public async Task RequestDirectives_OnAFreshEntry(string requestCc, string expected)
    {
        await using var rig = await OriginWith(c => { c.Response.Headers.CacheControl = "max-age=60"; c.Response.Headers.Age = "1"; });
        await rig.GetAsync("/r");
        Assert.Equal(expected, (await rig.GetAsync("/r", r => r.Headers.Add("Cache-Control", requestCc))).Status);
    }

    [Fact]
    public async Task PragmaNoCache_CountsWithoutCacheControl()
    {
        await using var rig = await OriginWith(c => c.Response.Headers.CacheControl = "max-age=60");
        await rig.GetAsync("/r");
        Assert.Equal("EXPIRED", (await rig.GetAsync("/r", r => r.Headers.Add("Pragma", "no-cache"))).Status);
    }

    [Theory]
    [InlineData("max-age=1", "max-stale", "STALE")]
    [InlineData("max-age=1", "max-stale=100", "STALE")]
    [InlineData("max-age=1", "max-stale=5", "EXPIRED")]
    [InlineData("max-age=1, must-revalidate", "max-stale", "EXPIRED")]
    [InlineData("max-age=1, proxy-revalidate", "max-stale", "EXPIRED")]
    public async Task MaxStale_OnAStaleEntry(string responseCc, string requestCc, string expected)
    {
        int n = 0;
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/r", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = responseCc;
            c.Response.Headers.Age = "31"; // 30 s stale on arrival
            return $"v{Interlocked.Increment(ref n)}";
        }));
        await rig.GetAsync("/r");
        var (status, body) = await rig.GetAsync("/r", r => r.Headers.Add("Cache-Control", requestCc));
        Assert.Equal(expected, status);
        Assert.Equal(expected == "STALE" ? "v1" : "v2", body);
    }

    [Fact]
    public async Task OnlyIfCached_504OnMiss_StoredOnHit()
    {
        await using var rig = await OriginWith(c => c.Response.Headers.CacheControl = "max-age=60");
        var miss = await rig.SendAsync("/r", r => r.Headers.Add("Cache-Control", "only-if-cached"));
        Assert.Equal(504, (int)miss.StatusCode);
        Assert.Equal(0, rig.Origin.Requests);
        await rig.GetAsync("/r");
        var hit = await rig.SendAsync("/r", r => r.Headers.Add("Cache-Control", "only-if-cached"));
        Assert.Equal(200, (int)hit.StatusCode);
        Assert.Equal(1, rig.Origin.Requests);
    }

    [Theory]
    [InlineData("max-age=60", "no-store", "HIT")]        // the targeted field wins over Cache-Control
    [InlineData("no-store", "max-age=60", "MISS")]
    [InlineData("max-age=0", "max-age=60", "EXPIRED")]
    public async Task CdnCacheControl_TakesPrecedence(string cdnCacheControl, string cacheControl, string expected)
    {
        await using var rig = await OriginWith(c =>
        {
            c.Response.Headers["CDN-Cache-Control"] = cdnCacheControl;
            c.Response.Headers.CacheControl = cacheControl;
        });
        await rig.GetAsync("/r");
        Assert.Equal(expected, (await rig.GetAsync("/r")).Status);
    }
}
