using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Output;
using ZcProxy.Native;
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
    private static long LoopDiskReads(InProcessProxy proxy) => LoopIoCounter(proxy, "read_bytes:");

    /// <summary>
    /// Bytes the proxy's loop threads read from files so far, page cache or not (rchar: read/pread and each sendfile's
    /// bytes count; recv on a socket does not).
    /// </summary>
    private static long LoopFileReads(InProcessProxy proxy) => LoopIoCounter(proxy, "rchar:");

    private const string SendfileBytes = "zcproxy_body_bytes_total{mechanism=\"sendfile\",direction=\"response\"}";

    private static long LoopIoCounter(InProcessProxy proxy, string field)
    {
        long total = 0;
        foreach (var loop in proxy.Get<EventLoops>().All)
        {
            Assert.True(loop.NativeThreadId > 0, "the loop thread runs");
            foreach (var line in File.ReadLines($"/proc/self/task/{loop.NativeThreadId}/io"))
                if (line.StartsWith(field, StringComparison.Ordinal))
                    total += long.Parse(line.AsSpan(field.Length).Trim(), CultureInfo.InvariantCulture);
        }
        return total;
    }

    /// <summary>A bulk body: the rig's DirectIoThreshold is 1 MiB.</summary>
    private const int Size = 3 << 20;

    /// <summary>Stores /obj by a MISS and returns its entry file, checked to be wholly in the page cache (the fill left it there).</summary>
    private static async Task<string> FillResidentAsync(CacheRig rig)
    {
        Assert.Equal("MISS", CacheRig.CacheStatusOf(await rig.SendAsync("/obj")));
        var entry = await CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, Size);
        Assert.Equal(CacheDirectIoTests.CachedShare(entry, out long pages), pages);
        return entry;
    }

    /// <summary>
    /// A resident bulk hit's range is looked up in the page cache once, by the DirectIo rule (FileRangeSending's cachestat
    /// of the whole range): its sendfiles trust that look-up for FileRangeSource.SeenResidentForMs (500 ms), so the first
    /// one, right after it, asks nothing. A cachestat per sendfile walked every page of the hit a second time (~2 % of a
    /// resident hit's CPU, docs/direct-io.md).
    /// </summary>
    [Fact]
    public async Task ResidentBulkHit_FirstSendfile_DoesNotAskThePageCacheAgain()
    {
        var body = CacheRig.RandomBody(Size, 33);
        await using var rig = await CacheRig.StartAsync(Serve(body));
        var entry = await FillResidentAsync(rig);
        long bodyOffset = new FileInfo(entry).Length - Size; // the body ends the entry file

        double resident = await rig.MetricAsync("zcproxy_file_sends_total{mechanism=\"sendfile\",reason=\"resident\"}");
        var asked = new System.Collections.Concurrent.ConcurrentQueue<long>();
        void Record(Microsoft.Win32.SafeHandles.SafeFileHandle file, long offset, long length)
        {
            if (Path.GetFileName(File.ResolveLinkTarget($"/proc/self/fd/{file.DangerousGetHandle()}", false)?.FullName) == Path.GetFileName(entry))
                asked.Enqueue(offset);
        }
        ZcProxy.Core.Output.LoopFileIo.Asked += Record;
        try
        {
            var hit = await rig.SendAsync("/obj");
            Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
            Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
        }
        finally
        {
            ZcProxy.Core.Output.LoopFileIo.Asked -= Record;
        }
        Assert.Equal(resident + 1, await rig.MetricAsync("zcproxy_file_sends_total{mechanism=\"sendfile\",reason=\"resident\"}"));
        Assert.DoesNotContain(bodyOffset, asked);
    }

    /// <summary>
    /// A resident hit of at least DirectIoThreshold goes by sendfile (the residency rule), and its sendfile calls run on the
    /// event loop, as nginx's do: all its pages are in memory, so no call waits for the disk, and sending them on the thread
    /// pool cost a hop per wait for the client and a loop wake-up per write edge (256 MiB hits: 0.19 against 0.12 CPU-s/GB,
    /// docs/direct-io.md). The loop threads' rchar counts each sendfile's bytes; their read_bytes stays 0.
    /// Only ZcProxy's transport has event loops (ZeroCopy.Enabled: false keeps Kestrel's sockets), so one path.
    /// </summary>
    [Fact]
    public async Task ResidentBulkHit_GoesBySendfile_OnTheEventLoop_WithoutDiskReads()
    {
        var body = CacheRig.RandomBody(Size, 32);
        await using var rig = await CacheRig.StartAsync(Serve(body));
        await FillResidentAsync(rig);

        double resident = await rig.MetricAsync("zcproxy_file_sends_total{mechanism=\"sendfile\",reason=\"resident\"}");
        double sendfileBytes = await rig.MetricAsync(SendfileBytes);
        long loopReadsBefore = LoopFileReads(rig.Proxy), loopDiskBefore = LoopDiskReads(rig.Proxy);
        var hit = await rig.SendAsync("/obj");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
        long loopReads = LoopFileReads(rig.Proxy) - loopReadsBefore;
        Assert.Equal(resident + 1, await rig.MetricAsync("zcproxy_file_sends_total{mechanism=\"sendfile\",reason=\"resident\"}"));
        Assert.Equal(sendfileBytes + Size, await rig.MetricAsync(SendfileBytes));
        // The loops sent the whole body themselves (no hop to the pool), all of it from memory.
        Assert.True(loopReads >= Size, $"loop threads read {loopReads} bytes of file for a {Size}-byte resident hit");
        Assert.Equal(0, LoopDiskReads(rig.Proxy) - loopDiskBefore);

        var again = await rig.SendAsync("/obj"); // keep-alive after it, same bytes
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await again.Content.ReadAsByteArrayAsync()));
        Assert.Equal(1, rig.Origin.Requests);
    }

    /// <summary>
    /// A bulk body sent from the page cache while some of its pages are not there (DirectIo "off" here, so the choice does
    /// not depend on how many): the loop sends the resident part, and the call whose bytes include the missing pages runs
    /// on the thread pool, so no loop thread ever waits for the disk (read_bytes stays 0), and every byte arrives.
    /// </summary>
    [Fact]
    public async Task BulkHit_WithSomePagesNotResident_ReadsThemOnThePool_NeverOnAnEventLoop()
    {
        const int Size = 3 << 20;
        const int Missing = 512 << 10;
        var body = CacheRig.RandomBody(Size, 33);
        await using var rig = await CacheRig.StartAsync(Serve(body), "\"DirectIo\": \"off\"");
        Assert.Equal("MISS", CacheRig.CacheStatusOf(await rig.SendAsync("/obj")));
        var entry = await CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, Size);
        long missingAt = new FileInfo(entry).Length - 3 * Missing / 2; // in the body's last 1 MiB: its first sendfile is resident
        await CacheDirectIoTests.MakeColdAsync(entry, missingAt, Missing);
        long cached = CacheDirectIoTests.CachedShare(entry, out long pages);
        Assert.True(cached < pages && cached > pages / 2, $"{cached} of the entry's {pages} pages resident: the rest stays");

        double sendfileBytes = await rig.MetricAsync(SendfileBytes);
        long loopReadsBefore = LoopFileReads(rig.Proxy), loopDiskBefore = LoopDiskReads(rig.Proxy);
        var hit = await rig.SendAsync("/obj");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
        Assert.Equal(sendfileBytes + Size, await rig.MetricAsync(SendfileBytes));
        Assert.True(LoopFileReads(rig.Proxy) > loopReadsBefore, "the resident start of the body was sent from the loop");
        // The missing pages were read from the disk (they are back in the page cache), by the pool, not by a loop thread.
        Assert.True(CacheDirectIoTests.CachedShare(entry, out _) == pages, "the missing pages were read back");
        Assert.Equal(0, LoopDiskReads(rig.Proxy) - loopDiskBefore);

        var again = await rig.SendAsync("/obj");
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await again.Content.ReadAsByteArrayAsync()));
        Assert.Equal(1, rig.Origin.Requests);
    }

    /// <summary>
    /// A bulk range sent by sendfile from the disk (DirectIo off here; under residency a re-admitted one) asks the kernel to
    /// read ahead (posix_fadvise SEQUENTIAL: a wider readahead window) once its first chunk leaves the loop, and the pages
    /// come back in large folios. With posix_fadvise WILLNEED windows (before) they came back as 4 KiB pages, and every
    /// later resident hit paid twice the page-cache CPU per byte in its sendfiles and ~40x per cachestat
    /// (docs/direct-io.md, "Read-ahead into large folios"). Other tests' moves may ask too: only this body's pages are looked at.
    /// </summary>
    [Fact]
    public async Task ColdBulkHit_BySendfile_ReadsAhead_IntoLargeFolios()
    {
        const int Size = 24 << 20;
        var body = CacheRig.RandomBody(Size, 34);
        await using var rig = await CacheRig.StartAsync(Serve(body), "\"DirectIo\": \"off\"");
        Assert.Equal("MISS", CacheRig.CacheStatusOf(await rig.SendAsync("/obj")));
        var entry = await CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, Size);
        long bodyStart = new FileInfo(entry).Length - Size;

        // A read-ahead is asked when a sendfile on the loop finds its chunk not resident. The kernel's own read-ahead of
        // the earlier reads (the head's, the first sendfiles') may keep ahead of a loop slowed by other load, so that every
        // chunk is found resident: then the hit is made cold and asked for again (at most three times).
        int asked = 0;
        Action record = () => Interlocked.Increment(ref asked);
        FileRangeSource.ReadAheadAsked += record;
        try
        {
            for (int attempt = 0; attempt < 3 && asked == 0; attempt++)
            {
                await CacheDirectIoTests.MakeColdAsync(entry);
                var hit = await rig.SendAsync("/obj");
                Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
                Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
            }
        }
        finally { FileRangeSource.ReadAheadAsked -= record; }
        Assert.True(asked > 0, "the cold body's sendfiles asked for no read-ahead in three cold hits");

        // Where the folios cannot be seen (no page frame numbers: not root) or the file system has no large folios (ext4
        // before Linux 6.16), there is nothing to compare.
        if (PageSizes.LargeFoliosIn(rig.CachePath) != true) return;
        var (present, small) = PageSizes.OfFileRange(entry, bodyStart, Size);
        Assert.Equal(Size / 4096, present);
        Assert.True(small <= present / 8, $"{small} of the body's {present} pages are 4 KiB folios (read ahead with WILLNEED: two thirds)");
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
