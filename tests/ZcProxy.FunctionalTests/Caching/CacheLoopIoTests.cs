using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// A hit whose pages left the page cache is read from the disk on the thread pool, never on an event loop, where every
/// other connection of the loop would wait for that disk read (the pollution benchmark's hot p99, issue 14). Proven with
/// the kernel's own per-thread I/O accounting: read_bytes of /proc/self/task/TID/io counts the bytes a thread made the
/// block layer read, so the loop threads' count must not move while a cold entry is served from the disk.
/// </summary>
public sealed class CacheLoopIoTests
{
    private static Action<WebApplication> Serve(byte[] body) => app => app.MapGet("/obj", (HttpContext c) =>
    {
        c.Response.Headers.CacheControl = "max-age=600";
        return Results.Bytes(body, "application/octet-stream");
    });

    /// <summary>Bytes the proxy's loop threads made the block layer read so far (read_bytes of each loop's /proc/self/task entry).</summary>
    private static long LoopDiskReads(InProcessProxy proxy)
    {
        long total = 0;
        foreach (var loop in proxy.Get<EventLoops>().All)
        {
            Assert.True(loop.NativeThreadId > 0, "the loop thread runs");
            foreach (var line in File.ReadLines($"/proc/self/task/{loop.NativeThreadId}/io"))
                if (line.StartsWith("read_bytes:", StringComparison.Ordinal))
                    total += long.Parse(line.AsSpan("read_bytes:".Length).Trim(), CultureInfo.InvariantCulture);
        }
        return total;
    }

    [Theory]
    [InlineData(256 << 10, "")] // below DirectIoThreshold: always sendfile, cold or not
    [InlineData(3 << 20, "\"DirectIo\": \"off\"")] // big, and direct I/O off: sendfile from the disk
    public async Task ColdHit_IsReadFromDisk_ButNotOnAnEventLoopThread(int size, string settings)
    {
        var body = CacheRig.RandomBody(size, 31);
        await using var rig = await CacheRig.StartAsync(Serve(body), settings);
        Assert.Equal("MISS", CacheRig.CacheStatusOf(await rig.SendAsync("/obj")));
        var entry = await CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, size);
        await CacheDirectIoTests.MakeColdAsync(entry);

        long loopReadsBefore = LoopDiskReads(rig.Proxy);
        var hit = await rig.SendAsync("/obj");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
        // The hit went through the page cache (its pages are back: read from the disk by someone) ...
        Assert.True(CacheDirectIoTests.CachedShare(entry, out _) > 0, "the cold hit read the entry into the page cache");
        // ... and no byte of that disk read was a loop thread's: head and body were read on the thread pool.
        Assert.Equal(0, LoopDiskReads(rig.Proxy) - loopReadsBefore);

        // Keep-alive still works after it, and a hot hit (all pages in memory) is served as usual.
        var again = await rig.SendAsync("/obj");
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await again.Content.ReadAsByteArrayAsync()));
        Assert.Equal(1, rig.Origin.Requests);
    }
}
