using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// Large spliced fills under DirectIo "threshold" are written with O_DIRECT from aligned buffers (the teed bytes read
/// out of the pipe), the tail past the last 4096 bytes with one buffered write: the entry file holds exactly the body,
/// byte for byte, no padding; zcproxy_cache_fill_bytes_total{mechanism="directio"} counts every body byte; a full
/// disk abandons the entry while the client still gets every byte.
/// </summary>
public sealed class CacheDirectFillTests(ITestOutputHelper output)
{
    private const string Threshold = "\"DirectIo\": \"threshold\""; // DirectIoThreshold is 1 MiB in CacheRig
    private static string Fill(string mechanism) => $"zcproxy_cache_fill_bytes_total{{mechanism=\"{mechanism}\"}}";

    private static Action<WebApplication> Serve(byte[] body) => app => app.MapGet("/big", (HttpContext c) =>
    {
        c.Response.Headers.CacheControl = "max-age=600";
        return Results.Bytes(body, "application/octet-stream");
    });

    [Theory]
    [InlineData((3 << 20) + 1234)] // three full buffers and a tail that is no multiple of 4096
    [InlineData(2 << 20)] // exactly two buffers: no tail
    [InlineData((1 << 20) + 1)] // just over the threshold: one buffer and a one-byte tail
    [InlineData(16 << 20)]
    public async Task LargeMiss_WrittenWithODirect_EntryIsTheBodyExactly_ThenShaExactHit(int size)
    {
        var body = CacheRig.RandomBody(size, 41);
        await using var rig = await CacheRig.StartAsync(Serve(body), Threshold);
        var miss = await rig.SendAsync("/big");
        Assert.Equal(("MISS", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(miss), CacheRig.Sha256(await miss.Content.ReadAsByteArrayAsync())));
        var entry = await CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, size);

        // The stored file: a head block, then the body at a 4096-aligned offset, and nothing after it.
        var stored = await File.ReadAllBytesAsync(entry);
        long bodyOffset = stored.Length - size;
        Assert.Equal(0, bodyOffset % 4096);
        Assert.Equal(CacheRig.Sha256(body), Convert.ToHexString(SHA256.HashData(stored.AsSpan((int)bodyOffset))));

        // Every body byte went by O_DIRECT (the head's prefix too): none spliced into the page cache nor copied.
        Assert.Equal(size, await rig.MetricAsync(Fill("directio")));
        Assert.Equal(0, await rig.MetricAsync(Fill("splice")) + await rig.MetricAsync(Fill("copy")));
        Assert.Equal(0, await rig.MetricAsync("zcproxy_cache_errors_total{kind=\"fill\"}"));

        var hit = await rig.SendAsync("/big");
        Assert.Equal(("HIT", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(hit), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync())));
        Assert.Equal(1, rig.Origin.Requests);
    }

    /// <summary>
    /// The O_DIRECT writes (and the tail's buffered one) run on the direct-I/O threads (Output/DirectIoThreads), not on
    /// thread-pool workers, where each 1 MiB write held one of the pool's workers (one per core) for the disk's latency.
    /// Proven with the kernel's per-thread accounting: wchar of /proc/self/task/TID/io counts the bytes a thread passed to
    /// write calls, and the zc-direct-io threads' count grows by the whole body (every body byte is written once, so none
    /// by another thread). Other tests' fills may add to it, never take from it.
    /// </summary>
    [Fact]
    public async Task LargeMiss_ODirectWrites_RunOnTheDirectIoThreads()
    {
        const int Size = (8 << 20) + 1234;
        var body = CacheRig.RandomBody(Size, 45);
        await using var rig = await CacheRig.StartAsync(Serve(body), Threshold);
        long before = DirectIoThreadsWrote();
        var miss = await rig.SendAsync("/big");
        Assert.Equal(("MISS", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(miss), CacheRig.Sha256(await miss.Content.ReadAsByteArrayAsync())));
        await CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, Size);
        Assert.Equal(Size, await rig.MetricAsync(Fill("directio")));
        long wrote = DirectIoThreadsWrote() - before;
        Assert.True(wrote >= Size, $"the direct-I/O threads wrote {wrote} bytes of a {Size}-byte O_DIRECT fill");
    }

    /// <summary>wchar (bytes passed to write calls) of the threads named zc-direct-io-N, summed.</summary>
    private static long DirectIoThreadsWrote()
    {
        long total = 0;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                if (!File.ReadAllText(Path.Combine(task, "comm")).StartsWith("zc-direct-io-", StringComparison.Ordinal)) continue;
                foreach (var line in File.ReadLines(Path.Combine(task, "io")))
                    if (line.StartsWith("wchar:", StringComparison.Ordinal))
                        total += long.Parse(line.AsSpan("wchar:".Length).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (IOException) { } // the thread ended while it was read
        }
        return total;
    }

    /// <summary>Below the threshold a fill stays spliced; residency fills: <see cref="CacheFillAdmissionTests"/>.</summary>
    [Fact]
    public async Task BelowTheThreshold_FillsStaySpliced()
    {
        var small = CacheRig.RandomBody(512 << 10, 42);
        await using var rig = await CacheRig.StartAsync(Serve(small), Threshold);
        await rig.SendAsync("/big");
        await CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, small.Length);
        Assert.Equal(0, await rig.MetricAsync(Fill("directio")));
        Assert.Equal(small.Length, await rig.MetricAsync(Fill("splice")) + await rig.MetricAsync(Fill("copy")));
    }

    /// <summary>
    /// The disk fills up in the middle of an O_DIRECT fill (another file takes the room while the origin pauses): the
    /// O_DIRECT write fails with ENOSPC, the entry is abandoned and counted, the client still gets every byte, no file
    /// is left, and the proxy goes on serving.
    /// </summary>
    [Fact]
    public async Task DiskFull_DuringDirectFill_ClientGetsEverything_PartialRemoved_ErrorCounted()
    {
        if (!CacheFaultTests.IsRoot) { output.WriteLine("SKIPPED: mounting a tmpfs needs root"); return; }
        using var mount = CacheFaultTests.TmpfsMount.Create("size=4m");
        var body = CacheRig.RandomBody(3 << 20, 44);
        var paused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cacheDir = Path.Combine(mount.Path, "cache");
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/sized", async (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            c.Response.ContentLength = body.Length;
            await c.Response.Body.WriteAsync(body.AsMemory(0, 1 << 20));
            await c.Response.Body.FlushAsync();
            paused.TrySetResult();
            await resume.Task;
            await c.Response.Body.WriteAsync(body.AsMemory(1 << 20));
        }), $"\"MinFreeDisk\": 0, {Threshold}", cachePath: cacheDir);

        var request = rig.SendAsync("/sized");
        await paused.Task;
        await Poll.UntilAsync(async () => await rig.MetricAsync(Fill("directio")) > 0, "the O_DIRECT fill to start");
        var filler = Path.Combine(mount.Path, "filler");
        await File.WriteAllBytesAsync(filler, new byte[(int)(new DriveInfo(mount.Path).AvailableFreeSpace - (256 << 10))]);
        resume.SetResult();
        var response = await request;
        Assert.Equal("MISS", CacheRig.CacheStatusOf(response));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await response.Content.ReadAsByteArrayAsync()));
        await Poll.UntilAsync(async () => await rig.MetricAsync("zcproxy_cache_errors_total{kind=\"fill\"}") == 1, "the abandoned fill to be counted");
        Assert.Empty(Directory.EnumerateFiles(cacheDir, "*", SearchOption.AllDirectories));
        File.Delete(filler);
        var again = await rig.SendAsync("/sized"); // not stored: fetched again, whole
        Assert.Equal(("MISS", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(again), CacheRig.Sha256(await again.Content.ReadAsByteArrayAsync())));
    }
}
