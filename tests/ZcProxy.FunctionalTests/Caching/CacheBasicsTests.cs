using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ZcProxy.Tests.Caching;

public class CacheBasicsTests
{
    [Fact]
    public async Task Miss_ThenHit_SmallBody_ByteExact_WithAge()
    {
        var body = CacheRig.RandomBody(100_000, 1);
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/small", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=60";
            return Results.Bytes(body, "application/octet-stream");
        }));

        var first = await rig.SendAsync("/small");
        Assert.Equal("MISS", CacheRig.CacheStatusOf(first));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await first.Content.ReadAsByteArrayAsync()));
        var second = await rig.SendAsync("/small");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(second));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await second.Content.ReadAsByteArrayAsync()));
        Assert.True(second.Headers.Age.HasValue);
        Assert.Equal(1, rig.Origin.Requests);
        // Counted when the cache step returns, after the body went out: the client may hold it an instant before.
        await Poll.UntilAsync(async () => await rig.MetricAsync("zcproxy_cache_requests_total{status=\"HIT\"}") == 1, "the hit counted once");
        Assert.Equal(1, await rig.MetricAsync("zcproxy_cache_entries"));
    }
}
