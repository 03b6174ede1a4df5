using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ZcProxy.Tests.Caching;

/// <summary>RFC 9111 §3: what a shared cache may store.</summary>
public class CacheStorabilityTests
{
    private static Task<CacheRig> OriginWith(string path, Action<HttpContext> headers, int status = 200)
        => CacheRig.StartAsync(app => app.MapGet(path, (HttpContext c) =>
        {
            headers(c);
            c.Response.StatusCode = status;
            return c.Response.WriteAsync("body");
        }));

    [Theory]
    [InlineData("no-store, max-age=60")]
    [InlineData("private, max-age=60")]
    public async Task ResponseDirective_PreventsStoring(string cacheControl)
    {
        await using var rig = await OriginWith("/r", c => c.Response.Headers.CacheControl = cacheControl);
        Assert.Equal("MISS", (await rig.GetAsync("/r")).Status);
        Assert.Equal("MISS", (await rig.GetAsync("/r")).Status);
        Assert.Equal(2, rig.Origin.Requests);
        Assert.Empty(rig.EntryFiles());
    }

    [Fact]
    public async Task RequestNoStore_PreventsStoring()
    {
        await using var rig = await OriginWith("/r", c => c.Response.Headers.CacheControl = "max-age=60");
        await rig.GetAsync("/r", r => r.Headers.Add("Cache-Control", "no-store"));
        Assert.Equal("MISS", (await rig.GetAsync("/r")).Status);
        Assert.Equal(2, rig.Origin.Requests);
    }

    [Fact]
    public async Task Authorization_NotStored_UnlessPublicOrSMaxAgeOrMustRevalidate()
    {
        await using var rig = await CacheRig.StartAsync(app =>
        {
            app.MapGet("/plain", (HttpContext c) => { c.Response.Headers.CacheControl = "max-age=60"; return "p"; });
            app.MapGet("/public", (HttpContext c) => { c.Response.Headers.CacheControl = "public, max-age=60"; return "q"; });
            app.MapGet("/smaxage", (HttpContext c) => { c.Response.Headers.CacheControl = "s-maxage=60"; return "s"; });
        });
        void Auth(HttpRequestMessage r) => r.Headers.Add("Authorization", "Bearer x");
        await rig.GetAsync("/plain", Auth);
        Assert.Equal("MISS", (await rig.GetAsync("/plain", Auth)).Status);
        await rig.GetAsync("/public", Auth);
        Assert.Equal("HIT", (await rig.GetAsync("/public", Auth)).Status);
        await rig.GetAsync("/smaxage", Auth);
        Assert.Equal("HIT", (await rig.GetAsync("/smaxage", Auth)).Status);
    }

    [Fact]
    public async Task StatusWithoutExplicitFreshness_NotHeuristicallyCacheable_NotStored()
    {
        await using var rig = await OriginWith("/r", c => c.Response.Headers.Location = "/elsewhere", status: 302);
        await rig.SendAsync("/r");
        await rig.SendAsync("/r");
        Assert.Equal(2, rig.Origin.Requests);
        Assert.Empty(rig.EntryFiles());
    }

    [Fact]
    public async Task Status404_HeuristicallyCacheable_WithExplicitMaxAge_IsHit()
    {
        await using var rig = await OriginWith("/r", c => c.Response.Headers.CacheControl = "max-age=60", status: 404);
        await rig.SendAsync("/r");
        var second = await rig.SendAsync("/r");
        Assert.Equal(404, (int)second.StatusCode);
        Assert.Equal("HIT", CacheRig.CacheStatusOf(second));
    }

    [Fact]
    public async Task VaryStar_NeverStored()
    {
        await using var rig = await OriginWith("/r", c => { c.Response.Headers.CacheControl = "max-age=60"; c.Response.Headers.Vary = "*"; });
        await rig.GetAsync("/r");
        Assert.Equal("MISS", (await rig.GetAsync("/r")).Status);
        Assert.Equal(2, rig.Origin.Requests);
    }

    [Fact]
    public async Task RouteWithoutCacheMetadata_NeverCached_NoHeader()
    {
        await using var rig = await OriginWith("/nocache/r", c => c.Response.Headers.CacheControl = "max-age=60");
        await rig.GetAsync("/nocache/r");
        var (status, _) = await rig.GetAsync("/nocache/r");
        Assert.Equal("-", status);
        Assert.Equal(2, rig.Origin.Requests);
    }

    [Fact]
    public async Task MustUnderstand_OverridesNoStore_ForAnUnderstoodStatus()
    {
        await using var rig = await OriginWith("/r", c => c.Response.Headers.CacheControl = "must-understand, no-store, max-age=60");
        await rig.GetAsync("/r");
        Assert.Equal("HIT", (await rig.GetAsync("/r")).Status);
    }

    [Fact]
    public async Task QualifiedPrivateAndNoCache_WithholdOnlyTheNamedFields()
    {
        await using var rig = await OriginWith("/r", c =>
        {
            c.Response.Headers.CacheControl = "max-age=60, private=\"X-Secret\", no-cache=\"X-Token\"";
            c.Response.Headers["X-Secret"] = "s";
            c.Response.Headers["X-Token"] = "t";
            c.Response.Headers["X-Public"] = "p";
        });
        await rig.GetAsync("/r");
        var hit = await rig.SendAsync("/r");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
        Assert.False(hit.Headers.Contains("X-Secret"));
        Assert.False(hit.Headers.Contains("X-Token"));
        Assert.True(hit.Headers.Contains("X-Public"));
    }

    [Fact]
    public async Task UncommonStatus_WithExplicitFreshness_IsStored_UnlessStatusesRestrictIt()
    {
        await using var rig = await OriginWith("/r", c => c.Response.Headers.CacheControl = "max-age=60", status: 299);
        await rig.GetAsync("/r");
        Assert.Equal("HIT", (await rig.GetAsync("/r")).Status);
    }
}
