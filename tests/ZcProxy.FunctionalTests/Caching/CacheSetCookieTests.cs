using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// Responses that set a cookie are per client: not stored by default (nginx's default), stored with the cookie on a
/// route with "CacheIgnoreHeaders": "Set-Cookie" (nginx's proxy_ignore_headers Set-Cookie).
/// </summary>
public class CacheSetCookieTests
{
    /// <summary>An origin that gives every visitor their own session and a page for it, marked cacheable (a common mistake).</summary>
    private static Task<CacheRig> RigAsync(bool zeroCopy, string cacheControl = "max-age=60", string routeMetadata = "")
    {
        int visitors = 0;
        return CacheRig.StartAsync(app => app.MapGet("/account", (HttpContext c) =>
        {
            int n = Interlocked.Increment(ref visitors);
            c.Response.Headers.CacheControl = cacheControl;
            c.Response.Headers.SetCookie = $"session=secret-{n}; Path=/; HttpOnly";
            return $"account page of visitor {n}";
        }), zeroCopy: zeroCopy, routeMetadata: routeMetadata);
    }

    private static string[] Cookies(HttpResponseMessage response)
        => response.Headers.TryGetValues("Set-Cookie", out var v) ? v.ToArray() : [];

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ByDefault_NotStored_TheSecondClientNeverSeesTheFirstOnesCookieOrPage(bool zeroCopy)
    {
        await using var rig = await RigAsync(zeroCopy);
        var first = await rig.SendAsync("/account");
        Assert.Equal("MISS", CacheRig.CacheStatusOf(first));
        Assert.Equal(["session=secret-1; Path=/; HttpOnly"], Cookies(first));

        var second = await rig.SendAsync("/account"); // another client: CacheRig's client keeps no cookies
        Assert.Equal("MISS", CacheRig.CacheStatusOf(second)); // before: HIT, the first visitor's page without its cookie
        Assert.Equal("account page of visitor 2", await second.Content.ReadAsStringAsync());
        Assert.Equal(["session=secret-2; Path=/; HttpOnly"], Cookies(second));
        Assert.DoesNotContain("secret-1", string.Join(";", Cookies(second)));

        Assert.Equal("MISS", CacheRig.CacheStatusOf(await rig.SendAsync("/account")));
        Assert.Equal(3, rig.Origin.Requests);
        Assert.Empty(rig.EntryFiles());
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RouteOptIn_StoresAndServesTheResponseWithItsCookie(bool zeroCopy)
    {
        await using var rig = await RigAsync(zeroCopy, routeMetadata: "\"CacheIgnoreHeaders\": \"Set-Cookie\"");
        var first = await rig.SendAsync("/account");
        Assert.Equal("MISS", CacheRig.CacheStatusOf(first));
        var second = await rig.SendAsync("/account");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(second));
        Assert.Equal("account page of visitor 1", await second.Content.ReadAsStringAsync());
        Assert.Equal(["session=secret-1; Path=/; HttpOnly"], Cookies(second)); // RFC 9111 §3.1: stored with its fields
        Assert.Equal(1, rig.Origin.Requests);
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Theory]
    [InlineData("max-age=60, private=\"Set-Cookie\"")]
    [InlineData("max-age=60, no-cache=\"Set-Cookie\"")]
    public async Task OriginWithholdsTheCookie_RestStoredAndShared_CookieNeverServed(string cacheControl)
    {
        // RFC 9111 §5.2.2.4/§5.2.2.7: the origin itself says the page is shared and only the cookie is not.
        await using var rig = await RigAsync(zeroCopy: true, cacheControl);
        var first = await rig.SendAsync("/account");
        Assert.Equal(["session=secret-1; Path=/; HttpOnly"], Cookies(first));
        var second = await rig.SendAsync("/account");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(second));
        Assert.Empty(Cookies(second));
    }

    [Fact]
    public async Task Check_RejectsAnUnsupportedOrEmptyIgnoreList_WithItsJsonPath()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""
            { "Routes": {
                "ok": { "ClusterId": "c", "Match": { "Path": "/a" }, "Metadata": { "Cache": "on", "CacheIgnoreHeaders": "set-cookie" } },
                "bad": { "ClusterId": "c", "Match": { "Path": "/b" }, "Metadata": { "Cache": "on", "CacheIgnoreHeaders": "Set-Cookie, Vary" } },
                "empty": { "ClusterId": "c", "Match": { "Path": "/c" }, "Metadata": { "Cache": "on", "CacheIgnoreHeaders": " " } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """, """
            "Cache": { "Path": "cache" }
            """);
        var found = await dir.ValidateAsync();
        Assert.Equal(2, found.Count);
        Assert.Contains(found, e => e.JsonPath.EndsWith("bad.Metadata.CacheIgnoreHeaders", StringComparison.Ordinal) && e.Message.Contains("'Vary' cannot be ignored"));
        Assert.Contains(found, e => e.JsonPath.EndsWith("empty.Metadata.CacheIgnoreHeaders", StringComparison.Ordinal) && e.Message.Contains("must name"));
    }
}
