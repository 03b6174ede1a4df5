using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Output;
using ZcProxy.Native;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// Cache.DirectIo: under "residency" (the default) the same entry goes out with sendfile while it is in the page cache
/// and is read with O_DIRECT once it is not; "threshold" reads every hit of at least DirectIoThreshold with O_DIRECT;
/// "off" never does. Proven by zcproxy_file_sends_total (the decision) and zcproxy_body_bytes_total (the bytes).
/// </summary>
public sealed class CacheDirectIoTests
{
    private const int Size = 3 << 20; // DirectIoThreshold is 1 MiB in CacheRig

    private static Action<WebApplication> Serve(byte[] body) => app => app.MapGet("/big", (HttpContext c) =>
    {
        c.Response.Headers.CacheControl = "max-age=600";
        return Results.Bytes(body, "application/octet-stream");
    });

    private static string Sends(string mechanism, string reason) => $"zcproxy_file_sends_total{{mechanism=\"{mechanism}\",reason=\"{reason}\"}}";
    private static string Bytes(string mechanism) => $"zcproxy_body_bytes_total{{mechanism=\"{mechanism}\",direction=\"response\"}}";

    /// <summary>
    /// Makes the entry cold: none of its pages in the page cache. DONTNEED alone was not reliable: it skips pages still
    /// referenced elsewhere (a sendfile's pages stay referenced by socket buffers until the peer's ACK frees them), and
    /// right after a hit some 257 pages sometimes stayed cached through every retry. So the entry is replaced by a fresh
    /// copy (same bytes, a new inode nobody else references): written,
    /// flushed to disk (DONTNEED keeps dirty pages) and dropped, then verified with cachestat, bounded. The proxy sees the
    /// copy at its next open of the entry: the first hit's, or every hit's under <see cref="OpensEveryHit"/> (a file it keeps
    /// open, Cache.OpenFiles, is the old inode).
    /// </summary>
    internal const string OpensEveryHit = "\"OpenFiles\": 0";

    internal static async Task MakeColdAsync(string entryFile) => await MakeColdAsync(entryFile, 0, 0);

    /// <summary>
    /// As <see cref="MakeColdAsync(string)"/>, for bytes [offset, offset+length) of the entry only (length 0: to its end). A
    /// range drops only the large folios (up to 2 MiB) wholly inside it, so it ends when some of its pages left, not all.
    /// </summary>
    internal static async Task MakeColdAsync(string entryFile, long offset, long length)
    {
        var fresh = entryFile + ".cold~"; // not an entry name (64 hex digits) nor a fill's temp file (.tmp)
        using (var source = new FileStream(entryFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        using (var copy = new FileStream(fresh, FileMode.CreateNew, FileAccess.Write))
        {
            await source.CopyToAsync(copy);
            copy.Flush(flushToDisk: true);
        }
        File.Move(fresh, entryFile, overwrite: true);
        using var file = File.OpenHandle(entryFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        long range = length > 0 ? length : RandomAccess.GetLength(file) - offset;
        SysResult left = default;
        bool Cold() => left.Ok && (left.Bytes == 0 || (length > 0 && left.Bytes < Syscalls.PagesSpanned(offset, range)));
        try
        {
            await Poll.UntilAsync(() =>
            {
                Syscalls.Fadvise(file, offset, length, LinuxConstants.POSIX_FADV_DONTNEED);
                left = Syscalls.CachedPages(file, offset, range);
                return Cold();
            }, "the entry's pages to leave the page cache", TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException) { }
        Assert.True(Cold(), $"after DONTNEED: {left.Bytes} pages cached (errno {left.Errno})");
    }

    /// <summary>
    /// The committed entry file of at least <paramref name="minLength"/> bytes under <paramref name="cachePath"/>: the client
    /// has the last byte of a MISS a moment before the fill's temp file is renamed into place, so wait (bounded) for it.
    /// </summary>
    /// <summary>Waits for a committed entry file holding a body of <paramref name="bodyLength"/> bytes (its head is well under 1 MiB).</summary>
    internal static async Task<string> CommittedEntryAsync(string cachePath, long bodyLength)
    {
        string? entry = null;
        bool Holds(string file) => Path.GetFileName(file).Length == 64 && new FileInfo(file).Length is var length
                                   && length >= bodyLength && length < bodyLength + (1 << 20);
        await Poll.UntilAsync(() => (entry = Directory.Exists(cachePath)
            ? Directory.EnumerateFiles(cachePath, "*", SearchOption.AllDirectories).FirstOrDefault(Holds) : null) is not null,
            $"a committed entry with a {bodyLength}-byte body in {cachePath}");
        return entry!;
    }

    internal static long CachedShare(string entryFile, out long pages)
    {
        using var file = File.OpenHandle(entryFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        long length = RandomAccess.GetLength(file);
        pages = Syscalls.PagesSpanned(0, length);
        return Syscalls.CachedPages(file, 0, length).Bytes;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Residency_SameEntry_HotGoesBySendfile_ColdByODirect_ThenHotAgainBySendfile(bool zeroCopy)
    {
        var body = CacheRig.RandomBody(Size, 21);
        // The entry is made cold by replacing its file after a hit (MakeColdAsync): every hit opens it by path.
        await using var rig = await CacheRig.StartAsync(Serve(body), OpensEveryHit, zeroCopy: zeroCopy);
        Assert.Equal("MISS", CacheRig.CacheStatusOf(await rig.SendAsync("/big")));
        PathAssert.ForwardedOn(rig.Proxy, zeroCopy);
        var entry = await CommittedEntryAsync(rig.CachePath, Size);
        // Under "residency" a fill leaves the new entry in the page cache (threshold drops it, see below).
        Assert.Equal(CachedShare(entry, out long pages), pages);
        // Without the zero-copy transport a sendfile choice is copied with preads: the decision is the same.
        var hotBytes = zeroCopy ? Bytes("sendfile") : Bytes("copy");

        async Task HitAsync(string expectMechanism, string expectReason, string bytesMetric)
        {
            double sends = await rig.MetricAsync(Sends(expectMechanism, expectReason)), bytes = await rig.MetricAsync(bytesMetric);
            var hit = await rig.SendAsync("/big");
            Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
            Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
            Assert.Equal(sends + 1, await rig.MetricAsync(Sends(expectMechanism, expectReason)));
            Assert.Equal(bytes + Size, await rig.MetricAsync(bytesMetric));
        }

        await HitAsync("sendfile", "resident", hotBytes);
        await MakeColdAsync(entry);
        await HitAsync("directio", "cold", Bytes("directio"));
        Assert.True(CachedShare(entry, out _) < pages / 8, "an O_DIRECT hit does not bring the entry back into the page cache");
        // Something else reads the file (as a sendfile hit of a resident entry would): hot again.
        await File.ReadAllBytesAsync(entry);
        await HitAsync("sendfile", "resident", hotBytes);
        Assert.Equal(1, rig.Origin.Requests);
    }

    [Fact]
    public async Task Residency_EntryDropped_HitAgainWithFreeMemory_BroughtBackBySendfile()
    {
        var body = CacheRig.RandomBody(Size, 24);
        await using var rig = await CacheRig.StartAsync(Serve(body), OpensEveryHit);
        await rig.SendAsync("/big");
        var entry = await CommittedEntryAsync(rig.CachePath, Size);
        await MakeColdAsync(entry);
        // The proxy runs in this process: the same memory cgroup and system, so the same answer about free room.
        bool roomy = new PageCacheRoom(TimeProvider.System).Fits(Size);

        async Task HitAsync(string mechanism, string reason)
        {
            double sends = await rig.MetricAsync(Sends(mechanism, reason)), bytes = await rig.MetricAsync(Bytes(mechanism));
            var hit = await rig.SendAsync("/big");
            Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
            Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
            Assert.Equal(sends + 1, await rig.MetricAsync(Sends(mechanism, reason)));
            Assert.Equal(bytes + Size, await rig.MetricAsync(Bytes(mechanism)));
        }

        await HitAsync("directio", "cold"); // hit cold once: O_DIRECT, it may never be asked for again
        Assert.True(CachedShare(entry, out long pages) < pages / 8, "an O_DIRECT hit does not bring the entry back");
        if (!roomy)
        {
            await HitAsync("directio", "cold"); // no free room: bringing it back would push other pages out
            return;
        }
        await HitAsync("sendfile", "readmitted"); // hit cold again, memory free: sendfile reads it back in
        Assert.InRange(CachedShare(entry, out _), Size / 4096, pages); // the whole body is back in the page cache
        await HitAsync("sendfile", "resident");
        Assert.Equal(1, rig.Origin.Requests);
    }

    /// <summary>
    /// An entry that lost some of its pages (DAMON's pageout of idle memory nibbles entries idle for a minute) goes by
    /// sendfile at its first hit when the memory has free room for the missing pages, which alone are read back; before,
    /// the whole entry was read with O_DIRECT until its second cold hit. Without free room: O_DIRECT, as before.
    /// </summary>
    [Fact]
    public async Task Residency_EntryPartlyDropped_FirstHitWithFreeMemory_SendfileReadsBackTheMissingPages()
    {
        const int Missing = 512 << 10;
        var body = CacheRig.RandomBody(Size, 25);
        await using var rig = await CacheRig.StartAsync(Serve(body), OpensEveryHit);
        await rig.SendAsync("/big");
        var entry = await CommittedEntryAsync(rig.CachePath, Size);
        await MakeColdAsync(entry, new FileInfo(entry).Length - 3 * Missing / 2, Missing);
        long cached = CachedShare(entry, out long pages);
        Assert.True(cached < pages && cached >= pages / 2, $"{cached} of the entry's {pages} pages resident: most of it stays");
        // The proxy runs in this process: the same memory cgroup and system, so the same answer about free room.
        bool roomy = new PageCacheRoom(TimeProvider.System).Fits((pages - cached) * 4096 + (1 << 20));
        var (mechanism, reason) = roomy ? ("sendfile", "readmitted") : ("directio", "cold");

        double sends = await rig.MetricAsync(Sends(mechanism, reason)), bytes = await rig.MetricAsync(Bytes(mechanism));
        var hit = await rig.SendAsync("/big");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
        Assert.Equal(sends + 1, await rig.MetricAsync(Sends(mechanism, reason)));
        Assert.Equal(bytes + Size, await rig.MetricAsync(Bytes(mechanism)));
        if (roomy) Assert.Equal(pages, CachedShare(entry, out _)); // the missing pages are back
        Assert.Equal(1, rig.Origin.Requests);
    }

    [Fact]
    public async Task Threshold_HotEntry_StillReadWithODirect_AndTheFillIsDroppedFromThePageCache()
    {
        var body = CacheRig.RandomBody(Size, 22);
        await using var rig = await CacheRig.StartAsync(Serve(body), cacheSettings: "\"DirectIo\": \"threshold\"");
        await rig.SendAsync("/big");
        var entry = await CommittedEntryAsync(rig.CachePath, Size);
        await File.ReadAllBytesAsync(entry); // hot, but the threshold rule does not look
        double direct = await rig.MetricAsync(Bytes("directio"));
        var hit = await rig.SendAsync("/big");
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
        Assert.Equal(1, await rig.MetricAsync(Sends("directio", "threshold")));
        Assert.Equal(direct + Size, await rig.MetricAsync(Bytes("directio")));
        Assert.Equal(0, await rig.MetricAsync(Sends("sendfile", "resident")));
    }

    [Fact]
    public async Task Off_ColdEntry_StillSentWithSendfile()
    {
        var body = CacheRig.RandomBody(Size, 23);
        await using var rig = await CacheRig.StartAsync(Serve(body), cacheSettings: "\"DirectIo\": \"off\"");
        await rig.SendAsync("/big");
        await MakeColdAsync(await CommittedEntryAsync(rig.CachePath, Size));
        double direct = await rig.MetricAsync(Bytes("directio"));
        var hit = await rig.SendAsync("/big");
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
        Assert.Equal(1, await rig.MetricAsync(Sends("sendfile", "off")));
        Assert.Equal(direct, await rig.MetricAsync(Bytes("directio")));
    }
}
