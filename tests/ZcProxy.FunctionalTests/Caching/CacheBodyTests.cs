using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Transport;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>How hit bodies move (sendfile / copy below DirectIoThreshold, O_DIRECT above), the lock, purge, eviction.</summary>
public class CacheBodyTests
{
    /// <summary>
    /// True when the proxy runs the zero-copy transport (which offers kernel moves on plaintext HTTP/1.x
    /// requests): its service is registered in the proxy's container. Without the transport, hits are copied.
    /// </summary>
    private static bool TransportWired(CacheRig rig) => rig.Proxy.Services.GetService(typeof(ZeroCopyTransport)) is not null;

    private static Action<WebApplication> Serve(string path, byte[] body) => app => app.MapGet(path, (HttpContext c) =>
    {
        c.Response.Headers.CacheControl = "max-age=600";
        return Results.Bytes(body, "application/octet-stream");
    });

    [Fact]
    public async Task SmallHit_BelowThreshold_Sendfile_OrCopyWithoutTransport()
    {
        var body = CacheRig.RandomBody(200_000, 2);
        await using var rig = await CacheRig.StartAsync(Serve("/s", body));
        await rig.SendAsync("/s");
        double sendfile = await rig.MetricAsync("zcproxy_body_bytes_total{mechanism=\"sendfile\",direction=\"response\"}");
        double copy = await rig.MetricAsync("zcproxy_body_bytes_total{mechanism=\"copy\",direction=\"response\"}");
        double direct = await rig.MetricAsync("zcproxy_body_bytes_total{mechanism=\"directio\",direction=\"response\"}");

        var hit = await rig.SendAsync("/s");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
        bool wired = TransportWired(rig);
        var mechanism = wired ? "sendfile" : "copy";
        double before = wired ? sendfile : copy;
        Assert.Equal(before + body.Length, await rig.MetricAsync($"zcproxy_body_bytes_total{{mechanism=\"{mechanism}\",direction=\"response\"}}"));
        Assert.Equal(direct, await rig.MetricAsync("zcproxy_body_bytes_total{mechanism=\"directio\",direction=\"response\"}"));
    }

    /// <summary>
    /// A MISS the cache does not store is only passed on, so it is spliced like an uncached response; a MISS that fills
    /// an entry is spliced too, teed into the entry file in the kernel (zcproxy_cache_fill_bytes_total{mechanism="splice"}),
    /// and the entry then serves a byte-exact HIT. Without ZcProxy's forwarder (YARP's) the fill is copied.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Miss_NotStored_IsSpliced_Stored_IsSplicedAndTeedIntoTheEntry(bool zeroCopy)
    {
        var passed = CacheRig.RandomBody(512 * 1024, 5);
        var stored = CacheRig.RandomBody(512 * 1024 + 123, 6);
        await using var rig = await CacheRig.StartAsync(app =>
        {
            app.MapGet("/passed", (HttpContext c) =>
            {
                c.Response.Headers.CacheControl = "no-store";
                return Results.Bytes(passed, "application/octet-stream");
            });
            Serve("/stored", stored)(app);
        }, zeroCopy: zeroCopy);
        const string Splice = "zcproxy_body_bytes_total{mechanism=\"splice\",direction=\"response\"}";
        const string Copy = "zcproxy_body_bytes_total{mechanism=\"copy\",direction=\"response\"}";
        const string FillSplice = "zcproxy_cache_fill_bytes_total{mechanism=\"splice\"}";
        const string FillCopy = "zcproxy_cache_fill_bytes_total{mechanism=\"copy\"}";
        double spliced = await rig.MetricAsync(Splice), copied = await rig.MetricAsync(Copy);
        // Counters land right after each syscall, possibly just after the client read the last byte: wait, then compare
        // exactly. A spliced body's bytes that came with its head in the head's one read are copied (at most HeadReadSize).
        async Task CountedAsync(double splice, double copy, int splicedBodies)
        {
            try { await Poll.UntilAsync(async () => await rig.MetricAsync(Splice) + await rig.MetricAsync(Copy) >= splice + copy, "the body bytes to be counted"); }
            catch (TimeoutException) { }
            double nowSpliced = await rig.MetricAsync(Splice), nowCopied = await rig.MetricAsync(Copy);
            Assert.Equal(splice + copy, nowSpliced + nowCopied);
            Assert.InRange(nowSpliced, splice - splicedBodies * ZcProxy.Core.Upstream.UpstreamConnection.HeadReadSize, splice);
        }

        var miss = await rig.SendAsync("/passed");
        Assert.Equal(("MISS", CacheRig.Sha256(passed)), (CacheRig.CacheStatusOf(miss), CacheRig.Sha256(await miss.Content.ReadAsByteArrayAsync())));
        if (zeroCopy) await CountedAsync(spliced + passed.Length, copied, 1);

        var fill = await rig.SendAsync("/stored");
        Assert.Equal(("MISS", CacheRig.Sha256(stored)), (CacheRig.CacheStatusOf(fill), CacheRig.Sha256(await fill.Content.ReadAsByteArrayAsync())));
        if (zeroCopy) await CountedAsync(spliced + passed.Length + stored.Length, copied, 2);
        await CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, stored.Length);
        // The bytes that came along with the head (at most HeadReadSize) are written from user space, where they already are.
        double fillSpliced = await rig.MetricAsync(FillSplice), fillCopied = await rig.MetricAsync(FillCopy);
        Assert.Equal(stored.Length, fillSpliced + fillCopied);
        Assert.InRange(fillCopied, 0, zeroCopy ? ZcProxy.Core.Upstream.UpstreamConnection.HeadReadSize : stored.Length);
        if (!zeroCopy) Assert.Equal(stored.Length, fillCopied);
        var hit = await rig.SendAsync("/stored");
        Assert.Equal(("HIT", CacheRig.Sha256(stored)), (CacheRig.CacheStatusOf(hit), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync())));
        Assert.Equal(2, rig.Origin.Requests); // /passed and /stored once each: the HIT came from the filled entry
        Balancing.PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
    }

    /// <summary>
    /// The origin pauses in the middle of a spliced, teed fill (the teeing move waits for upstream data on the loop),
    /// then finishes: the client gets every byte and the entry is whole.
    /// </summary>
    [Fact]
    public async Task SplicedFill_OriginPausesMidBody_EntryWhole_ThenHit()
    {
        var body = CacheRig.RandomBody(3 << 20, 8);
        var resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/pauses", async (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            c.Response.ContentLength = body.Length;
            await c.Response.Body.WriteAsync(body.AsMemory(0, 1 << 20));
            await c.Response.Body.FlushAsync();
            await resume.Task;
            await c.Response.Body.WriteAsync(body.AsMemory(1 << 20));
        }));
        var request = rig.SendAsync("/pauses");
        await Poll.UntilAsync(() => Directory.Exists(rig.CachePath) && Directory.EnumerateFiles(rig.CachePath, "*.tmp", SearchOption.AllDirectories)
            .Any(f => new FileInfo(f).Length > 1 << 20), "the fill to hold the first MiB");
        resume.SetResult();
        var miss = await request;
        Assert.Equal(("MISS", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(miss), CacheRig.Sha256(await miss.Content.ReadAsByteArrayAsync())));
        var hit = await rig.SendAsync("/pauses");
        Assert.Equal(("HIT", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(hit), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync())));
        Assert.Equal(body.Length, await rig.MetricAsync("zcproxy_cache_fill_bytes_total{mechanism=\"splice\"}")
            + await rig.MetricAsync("zcproxy_cache_fill_bytes_total{mechanism=\"copy\"}"));
        Assert.True(await rig.MetricAsync("zcproxy_cache_fill_bytes_total{mechanism=\"splice\"}") >= 2 << 20, "the body after the pause was teed");
    }

    /// <summary>
    /// The upstream dies in the middle of a spliced, teed fill: the client's connection is aborted (never a short body
    /// passed off as complete), no entry is stored, and the next request is a MISS that fills a whole one.
    /// </summary>
    [Fact]
    public async Task SplicedFill_UpstreamDiesMidBody_ClientAborted_NothingStored_NextRequestFillsAgain()
    {
        var body = CacheRig.RandomBody(2 << 20, 7);
        int calls = 0;
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/dies", async (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            c.Response.ContentLength = body.Length;
            if (Interlocked.Increment(ref calls) == 1)
            {
                await c.Response.Body.WriteAsync(body.AsMemory(0, 1 << 20));
                await c.Response.Body.FlushAsync();
                c.Abort();
                return;
            }
            await c.Response.Body.WriteAsync(body);
        }));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => rig.SendAsync("/dies"));
        await Poll.UntilAsync(() => !rig.EntryFiles().Any(), "the abandoned temp file to be removed");
        var again = await rig.SendAsync("/dies");
        Assert.Equal(("MISS", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(again), CacheRig.Sha256(await again.Content.ReadAsByteArrayAsync())));
        var hit = await rig.SendAsync("/dies");
        Assert.Equal(("HIT", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(hit), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync())));
        Assert.Equal(0, await rig.MetricAsync("zcproxy_cache_errors_total{kind=\"fill\"}"));
    }

    [Theory]
    [InlineData(3 << 20)]
    [InlineData((3 << 20) + 123)] // an unaligned tail: O_DIRECT reads a whole block, only 123 bytes of it are sent
    public async Task LargeHit_AtOrAboveThreshold_DirectIo_ByteExact_AndRangeAtUnalignedOffset(int size)
    {
        var body = CacheRig.RandomBody(size, 3);
        // "threshold": every hit of at least DirectIoThreshold, resident or not (the residency rule: CacheDirectIoTests).
        await using var rig = await CacheRig.StartAsync(Serve("/l", body), cacheSettings: "\"DirectIo\": \"threshold\"");
        const string Direct = "zcproxy_body_bytes_total{mechanism=\"directio\",direction=\"response\"}";
        const string Copy = "zcproxy_body_bytes_total{mechanism=\"copy\",direction=\"response\"}";
        const string Splice = "zcproxy_body_bytes_total{mechanism=\"splice\",direction=\"response\"}";
        // Counters land right after each send, possibly just after the client read the last byte: wait for the bytes to
        // be counted, then compare exactly (a too-early read failed here once, 1,044,603 bytes short).
        async Task<double> CountedAsync(string metric, double expected)
        {
            try { await Poll.UntilAsync(async () => await rig.MetricAsync(metric) >= expected, "the body bytes to be counted"); }
            catch (TimeoutException) { }
            return await rig.MetricAsync(metric);
        }
        var miss = await rig.SendAsync("/l");
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await miss.Content.ReadAsByteArrayAsync()));
        try { await Poll.UntilAsync(async () => await rig.MetricAsync(Copy) + await rig.MetricAsync(Splice) >= body.Length, "the miss to be counted"); }
        catch (TimeoutException) { }
        double direct = await rig.MetricAsync(Direct);
        double copy = await rig.MetricAsync(Copy);

        var hit = await rig.SendAsync("/l");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
        Assert.Equal(direct + body.Length, await CountedAsync(Direct, direct + body.Length));

        var part = await rig.SendAsync("/l", r => r.Headers.Range = new(1001, 2_100_000));
        Assert.Equal(206, (int)part.StatusCode);
        Assert.Equal(body[1001..2_100_001], await part.Content.ReadAsByteArrayAsync());
        var tail = await rig.SendAsync("/l", r => r.Headers.Range = new(4097, null)); // unaligned start, through the unaligned end
        Assert.Equal(206, (int)tail.StatusCode);
        Assert.Equal(body[4097..], await tail.Content.ReadAsByteArrayAsync());
        double expected = direct + body.Length + (2_100_001 - 1001) + (body.Length - 4097);
        Assert.Equal(expected, await CountedAsync(Direct, expected));
        // O_DIRECT hits never go through the copy path (with the transport: sent from the aligned buffers).
        Assert.Equal(copy, await rig.MetricAsync(Copy));
        Assert.Equal(1, rig.Origin.Requests);
    }

    [Fact]
    public async Task ConcurrentMisses_OneOriginRequest_OthersServedFromTheNewEntry()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var body = CacheRig.RandomBody(50_000, 4);
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/slow", async (HttpContext c) =>
        {
            await gate.Task;
            c.Response.Headers.CacheControl = "max-age=600";
            await c.Response.Body.WriteAsync(body);
        }));
        var cache = rig.Proxy.Get<DiskCache>();
        var requests = Enumerable.Range(0, 8).Select(_ => rig.SendAsync("/slow")).ToArray();
        await Poll.UntilAsync(() => rig.Origin.Requests == 1 && cache.Lock.Waiting == 7, "one origin request and seven waiters");
        gate.SetResult();
        var responses = await Task.WhenAll(requests);

        Assert.Equal(1, rig.Origin.Requests);
        Assert.Equal(["HIT", "HIT", "HIT", "HIT", "HIT", "HIT", "HIT", "MISS"], responses.Select(CacheRig.CacheStatusOf).Order());
        foreach (var r in responses) Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await r.Content.ReadAsByteArrayAsync()));
    }

    [Fact]
    public async Task AdminPurge_OneUrl_AndPrefix()
    {
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/p/{n}", (HttpContext c, string n) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            return n;
        }));
        foreach (var p in new[] { "/p/1", "/p/2", "/p/3" }) await rig.GetAsync(p);
        var host = new Uri(rig.Proxy.Url).Authority;

        var one = await CacheRig.Client.SendAsync(new HttpRequestMessage(HttpMethod.Delete, $"{rig.Proxy.AdminUrl}/cache?url=http://{host}/p/1"));
        Assert.Equal("{\"purged\":1}", await one.Content.ReadAsStringAsync());
        Assert.Equal("MISS", (await rig.GetAsync("/p/1")).Status);
        Assert.Equal("HIT", (await rig.GetAsync("/p/2")).Status);

        var prefix = await CacheRig.Client.SendAsync(new HttpRequestMessage(HttpMethod.Delete, $"{rig.Proxy.AdminUrl}/cache?prefix=http://{host}/p/"));
        Assert.Equal("{\"purged\":3}", await prefix.Content.ReadAsStringAsync());
        Assert.Equal("MISS", (await rig.GetAsync("/p/2")).Status);
        Assert.Equal(0, (await rig.MetricAsync("zcproxy_cache_entries")) - 1); // only /p/2 again
    }

    [Fact]
    public async Task Eviction_LeastRecentlyUsedAboveMaxSize_AndInactive()
    {
        var body = CacheRig.RandomBody(100_000, 5);
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/e/{n}", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            return Results.Bytes(body);
        }), "\"MaxSize\": \"300KiB\"");
        await rig.GetAsync("/e/a");
        await rig.GetAsync("/e/b");
        Assert.Equal("HIT", (await rig.GetAsync("/e/a")).Status); // a is now more recent than b
        await rig.GetAsync("/e/c");                                  // over 300 KiB: b goes
        Assert.Equal(2, await rig.MetricAsync("zcproxy_cache_entries"));
        Assert.Equal("HIT", (await rig.GetAsync("/e/a")).Status);
        Assert.Equal("HIT", (await rig.GetAsync("/e/c")).Status);
        Assert.Equal(2, rig.EntryFiles().Count());
        Assert.Equal("MISS", (await rig.GetAsync("/e/b")).Status);
    }

    [Fact]
    public async Task Eviction_InactiveEntriesGo()
    {
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/i", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            return "x";
        }), "\"Inactive\": \"2s\""); // long enough that the check right after the fill cannot race the eviction
        await rig.GetAsync("/i");
        Assert.Single(rig.EntryFiles());
        await Poll.UntilAsync(() => !rig.EntryFiles().Any(), "the inactive entry to be evicted");
        Assert.Equal("MISS", (await rig.GetAsync("/i")).Status);
    }

    [Fact]
    public async Task LockTimeout_WaiterGoesUpstreamItself()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int calls = 0;
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/stuck", async (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            if (Interlocked.Increment(ref calls) == 1) await gate.Task;
            await c.Response.WriteAsync("answer");
        }), "\"LockTimeout\": \"200ms\"");
        var first = rig.SendAsync("/stuck");
        await Poll.UntilAsync(() => rig.Origin.Requests == 1, "the first request at the origin");
        var second = await rig.GetAsync("/stuck");
        Assert.Equal(("MISS", "answer"), second);
        Assert.Equal(2, rig.Origin.Requests);
        gate.SetResult();
        Assert.Equal("MISS", CacheRig.CacheStatusOf(await first));
        Assert.Equal("HIT", (await rig.GetAsync("/stuck")).Status);
    }

    [Fact]
    public async Task PurgeByUrl_MatchesAPercentEncodedPath()
    {
        await using var rig = await CacheRig.StartAsync(app => app.MapFallback((HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            return "x";
        }));
        await rig.GetAsync("/a%20b/c%C3%A9?q=1%202");
        Assert.Equal("HIT", (await rig.GetAsync("/a%20b/c%C3%A9?q=1%202")).Status);
        var host = new Uri(rig.Proxy.Url).Authority;
        var purge = await CacheRig.Client.SendAsync(new HttpRequestMessage(HttpMethod.Delete,
            $"{rig.Proxy.AdminUrl}/cache?url={Uri.EscapeDataString($"http://{host}/a%20b/c%C3%A9?q=1%202")}"));
        Assert.Equal("{\"purged\":1}", await purge.Content.ReadAsStringAsync());
    }
}
