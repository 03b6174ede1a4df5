using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Caching;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;
using ZcProxy.Tests.Transport;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// The key is the request target as received: targets that differ only in what Kestrel decodes are different
/// resources to the origin and must never share an entry (one could fill what the other is served from).
/// </summary>
public class CacheKeyTests
{
    /// <summary>An origin whose every answer is different, so a hit on the wrong entry shows in the body.</summary>
    private static Task<CacheRig> RigAsync(bool zeroCopy)
    {
        int answers = 0;
        return CacheRig.StartAsync(app => app.MapFallback((HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            return $"answer {Interlocked.Increment(ref answers)} to {c.Features.Get<IHttpRequestFeature>()!.RawTarget}";
        }), zeroCopy: zeroCopy);
    }

    public static TheoryData<bool, string, string> EncodedAndDecoded => new()
    {
        { true, "/k%3Fx=1", "/k?x=1" },      // an encoded '?' is part of the path, not the start of a query
        { false, "/k%3Fx=1", "/k?x=1" },
        { true, "/a%2Fb", "/a%252Fb" },      // Kestrel leaves %2F encoded and decodes %25: both paths read "/a%2Fb"
        { false, "/a%2Fb", "/a%252Fb" },
        { true, "/a%2fb", "/a%252fb" },
        { false, "/a%2fb", "/a%252fb" },
        { true, "/k%23x", "/k%2523x" },      // '#' encoded once and twice
        { false, "/k%23x", "/k%2523x" },
        { true, "/q?v=%26", "/q?v=&" },      // the query is already raw: an encoded '&' is not a separator
        { false, "/q?v=%26", "/q?v=&" },
    };

    [Theory]
    [MemberData(nameof(EncodedAndDecoded))]
    public async Task TargetsThatDecodeAlike_AreDifferentEntries(bool zeroCopy, string first, string second)
    {
        await using var rig = await RigAsync(zeroCopy);
        var (firstStatus, firstBody) = await rig.GetAsync(first);
        Assert.Equal("MISS", firstStatus);
        var (secondStatus, secondBody) = await rig.GetAsync(second);
        Assert.Equal("MISS", secondStatus); // before: HIT, served the first target's answer
        Assert.NotEqual(firstBody, secondBody);
        Assert.Equal(("HIT", firstBody), await rig.GetAsync(first));
        Assert.Equal(("HIT", secondBody), await rig.GetAsync(second));
        Assert.Equal(2, rig.Origin.Requests);
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task EncodedQuestionMark_CannotPoisonTheQueryUrl(bool zeroCopy)
    {
        // The attack: a request for /k%3Fx=1 (a path the attacker controls the answer of, or an error page) is
        // stored under the key that /k?x=1 is then served from.
        await using var rig = await RigAsync(zeroCopy);
        var (_, poisoned) = await rig.GetAsync("/k%3Fx=1");
        var (status, body) = await rig.GetAsync("/k?x=1");
        Assert.Equal("MISS", status);
        Assert.NotEqual(poisoned, body);
        Assert.EndsWith(" to /k?x=1", body);
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    public static TheoryData<bool, string, string> CaseOfPercentEncodings => new()
    {
        { true, "/c%2fd", "/c%2Fd" },
        { false, "/c%2fd", "/c%2Fd" },
        { true, "/e?q=%3f%c3%a9", "/e?q=%3F%C3%A9" },
        { false, "/e?q=%3f%c3%a9", "/e?q=%3F%C3%A9" },
    };

    /// <summary>RFC 3986 §6.2.2.1: the hex digits' case does not change the resource, so the key upper-cases them.</summary>
    [Theory]
    [MemberData(nameof(CaseOfPercentEncodings))]
    public async Task CaseOfPercentEncodings_IsOneEntry(bool zeroCopy, string lower, string upper)
    {
        await using var rig = await RigAsync(zeroCopy);
        var (_, body) = await rig.GetAsync(lower);
        Assert.Equal(("HIT", body), await rig.GetAsync(upper)); // before: MISS for %2f/%2F (Kestrel keeps their case)
        Assert.Equal(1, rig.Origin.Requests);
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Fact]
    public async Task RawFragmentCharacter_IsNotTheEncodedOne()
    {
        // Kestrel accepts a raw '#' in a target (no browser sends one; a hand-made request can) and decodes %23 to the
        // same path: before, whichever came first filled the entry of the other.
        await using var rig = await RigAsync(zeroCopy: true);
        var host = new Uri(rig.Proxy.Url).Authority;
        var (_, encoded) = await rig.GetAsync("/h%23x");
        using var raw = await RawHttpClient.ConnectAsync(new Uri(rig.Proxy.Url));
        await raw.SendAsync($"GET /h#x HTTP/1.1\r\nHost: {host}\r\n\r\n");
        var head = await raw.ReadHeadAsync();
        Assert.StartsWith("HTTP/1.1 200", head);
        Assert.Contains("X-Cache-Status: MISS", head, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(("HIT", encoded), await rig.GetAsync("/h%23x"));
        Assert.Equal(2, rig.Origin.Requests);
    }

    private static async Task<string> PurgeAsync(CacheRig rig, string url)
    {
        var response = await CacheRig.Client.SendAsync(new HttpRequestMessage(HttpMethod.Delete,
            $"{rig.Proxy.AdminUrl}/cache?url={Uri.EscapeDataString(url)}"));
        return await response.Content.ReadAsStringAsync();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PurgeByUrl_NamesTheTargetAsSent_PercentEncodingsKept(bool zeroCopy)
    {
        await using var rig = await RigAsync(zeroCopy);
        var host = new Uri(rig.Proxy.Url).Authority;
        foreach (var target in new[] { "/k%3Fx=1", "/k?x=1", "/a%2Fb", "/a%252Fb" }) await rig.GetAsync(target);

        Assert.Equal("{\"purged\":1}", await PurgeAsync(rig, $"http://{host}/k%3Fx=1"));
        Assert.Equal("MISS", (await rig.GetAsync("/k%3Fx=1")).Status);
        Assert.Equal("HIT", (await rig.GetAsync("/k?x=1")).Status); // before: purged with it (one shared entry)

        Assert.Equal("{\"purged\":1}", await PurgeAsync(rig, $"http://{host}/a%2fb#fragment")); // hex case and fragment do not matter
        Assert.Equal("MISS", (await rig.GetAsync("/a%2Fb")).Status);
        Assert.Equal("HIT", (await rig.GetAsync("/a%252Fb")).Status);
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Fact]
    public async Task PurgeByUrl_TypedWithRawSpaceOrNonAscii_MatchesTheEncodedTarget()
    {
        await using var rig = await RigAsync(zeroCopy: true);
        var host = new Uri(rig.Proxy.Url).Authority;
        await rig.GetAsync("/a%20b/caf%C3%A9");
        Assert.Equal("{\"purged\":1}", await PurgeAsync(rig, $"http://{host}/a b/café"));
        Assert.Equal("MISS", (await rig.GetAsync("/a%20b/caf%C3%A9")).Status);
    }

    public static TheoryData<bool, string, string> UnsafeTargets => new()
    {
        { true, "/k%3Fx=1", "/k?x=1" },
        { false, "/k%3Fx=1", "/k?x=1" },
        { true, "/k%23x", "/k" }, // the decoded '#' must not start a fragment
        { false, "/k%23x", "/k" },
    };

    [Theory]
    [MemberData(nameof(UnsafeTargets))]
    public async Task UnsafeMethod_InvalidatesItsOwnTarget_NotTheDecodedOne(bool zeroCopy, string target, string other)
    {
        await using var rig = await RigAsync(zeroCopy);
        await rig.GetAsync(target);
        await rig.GetAsync(other);
        await rig.SendAsync(target, method: HttpMethod.Post);
        Assert.Equal("HIT", (await rig.GetAsync(other)).Status);
        Assert.Equal("MISS", (await rig.GetAsync(target)).Status);
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    [Fact]
    public async Task EntryOfAnEarlierVersion_RemovedAtStart_NotCountedCorrupt_NeverServed()
    {
        await using var rig = await RigAsync(zeroCopy: true);
        void Host(HttpRequestMessage r) => r.Headers.Host = "cache.test"; // a fixed Host keeps the key across the restart
        await rig.SendAsync("/old", Host);
        var cache = rig.Proxy.Get<DiskCache>();
        var current = cache.PathFor(DiskCache.VariantHash("http://cache.test/old", []));
        Assert.True(File.Exists(current));
        // Earlier versions named the file by the key alone (and keyed the decoded path).
        var legacy = cache.PathFor(DiskCache.Hash("http://cache.test/old"));
        await rig.RestartProxyAsync(() =>
        {
            Directory.CreateDirectory(Path.GetDirectoryName(legacy)!);
            File.Move(current, legacy);
        });
        var reloaded = rig.Proxy.Get<DiskCache>();
        await Poll.UntilAsync(() => reloaded.Loaded, "the cache loader");
        Assert.False(File.Exists(legacy));
        Assert.Equal(0, reloaded.Metrics.CorruptEntries.Value);
        Assert.Equal("MISS", CacheRig.CacheStatusOf(await rig.SendAsync("/old", Host)));
    }

    private static HttpRequest Request(string rawTarget, string host = "example.com")
    {
        var context = new DefaultHttpContext();
        context.Request.Scheme = "http";
        context.Request.Host = new HostString(host);
        context.Features.Get<IHttpRequestFeature>()!.RawTarget = rawTarget;
        return context.Request;
    }

    private const string Template = "{scheme}://{host}{uri}";

    [Theory]
    [InlineData("/k%3Fx=1", "http://example.com/k%3Fx=1")]
    [InlineData("/k?x=1", "http://example.com/k?x=1")]
    [InlineData("/a%2fb?q=%c3%a9", "http://example.com/a%2Fb?q=%C3%A9")]
    [InlineData("/%41", "http://example.com/%41")]               // not decoded, even where RFC 3986 would allow it
    [InlineData("/bad%zz%4", "http://example.com/bad%zz%4")]      // not an encoding: kept as it is
    [InlineData("/h#x|\t", "http://example.com/h#x|\t")]           // raw characters Kestrel accepts: kept, never encoded
    [InlineData("http://Other.example/p%3F?q", "http://example.com/p%3F?q")] // absolute-form: path and query only
    public void Key_IsTheRawTarget_WithUpperCaseHex(string rawTarget, string key)
        => Assert.Equal(key, CacheKey.For(Template, Request(rawTarget)));

    [Fact]
    public void PathAndQueryPlaceholders_AreRawToo()
        => Assert.Equal("/p%3F|?q=%26", CacheKey.For("{path}|{query}", Request("/p%3f?q=%26")));

    [Theory]
    [InlineData("http://Example.com/k%3Fx=1#f", "http://example.com/k%3Fx=1")]
    [InlineData("http://example.com:80?q", "http://example.com/?q")]
    [InlineData("http://example.com:8080/a b/é", "http://example.com:8080/a%20b/%C3%A9")]
    public void KeyOfUrl_TakesTheTargetAsWritten(string url, string key)
        => Assert.Equal(key, CacheKey.ForUrl(Template, url));

    [Theory]
    [InlineData("/x%3Fy", "http://example.com/x%3Fy")]
    [InlineData("http://example.com/x%2fy", "http://example.com/x%2Fy")]
    [InlineData("sibling%3F", "http://example.com/dir/sibling%3F")]
    [InlineData("http://elsewhere.example/x", null)]
    [InlineData("//elsewhere.example/x", null)]
    public void KeyOfReference_ResolvedAgainstTheRequest_SameOriginOnly(string reference, string? key)
        => Assert.Equal(key, CacheKey.ForReference(Template, Request("/dir/page"), reference));

    [Fact]
    public void Canonical_EncodesSpaceAndNonAscii_AsUtf8()
        => Assert.Equal("/%F0%9F%98%80%20%C3%A9|", CacheKey.Canonical("/\U0001F600 é|"));

    [Fact]
    public void Canonical_LeavesAValidTargetAsItIs()
    {
        const string target = "/a-b._~!$&'()*+,;=:@/%2F?x=%3F&y";
        Assert.Same(target, CacheKey.Canonical(target)); // the common case allocates nothing
    }
}
