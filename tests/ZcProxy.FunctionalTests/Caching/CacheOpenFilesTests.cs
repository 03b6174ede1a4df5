using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ZcProxy.Core.Caching;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// Cache.OpenFiles: entry files kept open with their verified heads, so a hit opens and reads nothing before sending
/// (nginx open_file_cache); a purge, a replacement or the bound closes them, never under a hit still sending.
/// </summary>
public class CacheOpenFilesTests
{
    /// <summary>Answers "{path} v{n}", n counting the origin's answers for that path: a refetch is told apart from a hit.</summary>
    private static Action<WebApplication> Versioned(out Func<string, int> versions)
    {
        var counts = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        versions = path => counts.GetValueOrDefault(path);
        return app => app.MapGet("/v/{name}", (HttpContext c, string name) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            return $"{name} v{counts.AddOrUpdate(name, 1, (_, n) => n + 1)}";
        });
    }

    private static DiskCache CacheOf(CacheRig rig) => rig.Proxy.Services.GetRequiredService<DiskCache>();

    private static IndexEntry EntryOf(CacheRig rig, string path)
        => Assert.Single(CacheOf(rig).Index.Candidates($"http://{new Uri(rig.Proxy.Url).Authority}{path}", static (_, _) => true, 0));

    [Fact]
    public async Task Hit_ServesTheKeptOpenFile_NeitherOpeningNorParsingAgain()
    {
        await using var rig = await CacheRig.StartAsync(Versioned(out _));
        Assert.Equal(("MISS", "a v1"), await rig.GetAsync("/v/a"));
        Assert.Equal(("HIT", "a v1"), await rig.GetAsync("/v/a"));
        var cache = CacheOf(rig);
        Assert.Equal(1, cache.Index.OpenFiles);
        var entry = EntryOf(rig, "/v/a");

        using var first = await cache.OpenAsync(entry);
        // Warm: the kept file's hit completes synchronously; it allocates the OpenEntry it returns (and, in a Debug build,
        // the async state machine: ~310 bytes in all).
        long before = GC.GetAllocatedBytesForCurrentThread();
        using var second = await cache.OpenAsync(entry);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Same(first!.File, second!.File);         // not opened again
        Assert.Same(first.Response, second.Response);   // not read and parsed again
        Assert.InRange(allocated, 0, 512);              // opening and parsing the head allocated ~2 KB per hit before
        Assert.Equal(("HIT", "a v1"), await rig.GetAsync("/v/a"));
    }

    [Fact]
    public async Task Hit_TakesTheStoredHeadsFreshness_ComputedOncePerKeptFileAndSettings()
    {
        await using var rig = await CacheRig.StartAsync(Versioned(out _));
        await rig.GetAsync("/v/f");
        Assert.Equal(("HIT", "f v1"), await rig.GetAsync("/v/f"));
        var cache = CacheOf(rig);
        using var first = await cache.OpenAsync(EntryOf(rig, "/v/f"));
        using var second = await cache.OpenAsync(EntryOf(rig, "/v/f"));

        var freshness = first!.Freshness(IgnoredHeaders.None, null);
        Assert.Same(freshness, second!.Freshness(IgnoredHeaders.None, null)); // no Cache-Control or date parsed per hit
        Assert.Equal(TimeSpan.FromSeconds(600), freshness.Lifetime);
        Assert.True(freshness.Directives.Has("max-age"));
        // Another route's settings get their own answer (Cache-Control ignored, no default, no Last-Modified: not fresh).
        Assert.Equal(TimeSpan.Zero, second.Freshness(IgnoredHeaders.CacheControl, null).Lifetime);
        Assert.Equal(TimeSpan.FromMinutes(5), second.Freshness(IgnoredHeaders.CacheControl, TimeSpan.FromMinutes(5)).Lifetime);
        // A head a 304 refreshed is answered with its own freshness, never the kept head's.
        var now = cache.Time.GetUtcNow();
        var refreshed = first.With(first.Response with { ResponseTime = first.Response.ResponseTime.AddSeconds(-30), RequestTime = first.Response.RequestTime.AddSeconds(-30) });
        // (30 s longer in the cache; its apparent age, against the origin's Date, loses what Date lags the request: whole
        // seconds, and Kestrel updates its Date once a second on a timer, which lags further on a busy machine: 28.97 s seen)
        Assert.InRange(refreshed.Freshness(IgnoredHeaders.None, null).AgeAt(now) - freshness.AgeAt(now), TimeSpan.FromSeconds(25), TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Purge_ClosesTheKeptFile_OnlyAfterTheHitSendingFromIt()
    {
        await using var rig = await CacheRig.StartAsync(Versioned(out var versions));
        await rig.GetAsync("/v/p");
        Assert.Equal(("HIT", "p v1"), await rig.GetAsync("/v/p"));
        var cache = CacheOf(rig);
        using var inFlight = await cache.OpenAsync(EntryOf(rig, "/v/p"));

        var host = new Uri(rig.Proxy.Url).Authority;
        var purged = await CacheRig.Client.SendAsync(new HttpRequestMessage(HttpMethod.Delete, $"{rig.Proxy.AdminUrl}/cache?url=http://{host}/v/p"));
        Assert.Equal("{\"purged\":1}", await purged.Content.ReadAsStringAsync());
        Assert.Equal(0, cache.Index.OpenFiles);
        Assert.False(inFlight!.File.IsClosed); // the hit still sending from it keeps it
        var body = new byte[16];
        Assert.Equal(4, RandomAccess.Read(inFlight.File, body, inFlight.BodyOffset));
        inFlight.Dispose();
        Assert.True(inFlight.File.IsClosed);

        Assert.Equal(("MISS", "p v2"), await rig.GetAsync("/v/p"));
        Assert.Equal(("HIT", "p v2"), await rig.GetAsync("/v/p"));
        Assert.Equal(2, versions("p"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Replacement_IsServedFromItsOwnFile_NeverTheReplacedOnesHead(bool zeroCopy)
    {
        await using var rig = await CacheRig.StartAsync(Versioned(out _), zeroCopy: zeroCopy);
        await rig.GetAsync("/v/r");
        Assert.Equal(("HIT", "r v1"), await rig.GetAsync("/v/r"));
        var cache = CacheOf(rig);
        var replaced = EntryOf(rig, "/v/r");
        using var inFlight = await cache.OpenAsync(replaced);

        // no-cache with no validator stored: a full refetch, stored over the same file name.
        var refetched = await rig.GetAsync("/v/r", r => r.Headers.CacheControl = new() { NoCache = true });
        Assert.Equal("r v2", refetched.Body);
        Assert.Null(replaced.Open);
        Assert.Equal(("HIT", "r v2"), await rig.GetAsync("/v/r"));
        using var current = await cache.OpenAsync(EntryOf(rig, "/v/r"));
        Assert.NotSame(inFlight!.File, current!.File);
        Assert.Equal(("HIT", "v2"), await rig.GetAsync("/v/r", r => r.Headers.Range = new(2, 3)));
    }

    [Fact]
    public async Task OpenFiles_BoundsTheKeptFiles_LeastRecentlyUsedClosedFirst()
    {
        await using var rig = await CacheRig.StartAsync(Versioned(out var versions), "\"OpenFiles\": 2");
        foreach (var name in new[] { "a", "b", "c" })
        {
            await rig.GetAsync("/v/" + name);
            Assert.Equal(("HIT", $"{name} v1"), await rig.GetAsync("/v/" + name));
        }
        var cache = CacheOf(rig);
        Assert.Equal(2, cache.Index.OpenFiles);
        Assert.Null(EntryOf(rig, "/v/a").Open);
        Assert.NotNull(EntryOf(rig, "/v/c").Open);
        Assert.Equal(("HIT", "a v1"), await rig.GetAsync("/v/a")); // reopened, and b (now least recent) let go
        Assert.Null(EntryOf(rig, "/v/b").Open);
        Assert.Equal(1, versions("a"));
    }

    [Fact]
    public async Task OpenFilesZero_KeepsNoFileOpen_HitsStillServed()
    {
        await using var rig = await CacheRig.StartAsync(Versioned(out _), "\"OpenFiles\": 0");
        await rig.GetAsync("/v/z");
        Assert.Equal(("HIT", "z v1"), await rig.GetAsync("/v/z"));
        Assert.Equal(0, CacheOf(rig).Index.OpenFiles);
    }
}
