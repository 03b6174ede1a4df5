using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ZcProxy.Core.Output;
using ZcProxy.Native;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// Under DirectIo "residency" a large fill stays in the page cache only when the memory has free room for it
/// (FillAdmission, PageCacheRoom): the proxy reads the room from a fake /proc and cgroup tree. No room: the spliced fill
/// is written with O_DIRECT and none of the body's pages are in the page cache after it; room: it is spliced through the
/// page cache and every page stays. Either way the next request is a sha-exact HIT.
/// </summary>
public sealed class CacheFillAdmissionTests : IDisposable
{
    private const int Size = (3 << 20) + 1234; // over CacheRig's 1 MiB DirectIoThreshold, with a tail that is no multiple of 4096
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"zc-fill-admission-{Guid.NewGuid():N}");

    public CacheFillAdmissionTests()
    {
        Directory.CreateDirectory(Path.Combine(_root, "proc", "self"));
        File.WriteAllText(Path.Combine(_root, "proc", "self", "cgroup"), "0::/\n"); // no memory cgroup: MemFree decides
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static string Fill(string mechanism) => $"zcproxy_cache_fill_bytes_total{{mechanism=\"{mechanism}\"}}";

    /// <summary>The proxy's PageCacheRoom, reading a fake meminfo of 8 GiB with <paramref name="freeMiB"/> free (the margin is 1 GiB).</summary>
    private Action<IServiceCollection> RoomWithFree(long freeMiB)
    {
        File.WriteAllText(Path.Combine(_root, "proc", "meminfo"), $"MemTotal:       {8192 * 1024} kB\nMemFree:        {freeMiB * 1024} kB\n");
        var room = new PageCacheRoom(TimeProvider.System, Path.Combine(_root, "proc"), Path.Combine(_root, "cgroup"));
        return services => services.Replace(ServiceDescriptor.Singleton(room));
    }

    private static Action<WebApplication> Serve(byte[] body) => app => app.MapGet("/big", (HttpContext c) =>
    {
        c.Response.Headers.CacheControl = "max-age=600";
        return Results.Bytes(body, "application/octet-stream");
    });

    [Theory]
    [InlineData(1024 + 2, false)] // 2 MiB over the margin: the 3 MiB body does not fit
    [InlineData(4096, true)]
    public async Task Residency_LargeFill_StaysInThePageCache_OnlyWithFreeRoom(long freeMiB, bool room)
    {
        var body = CacheRig.RandomBody(Size, 51);
        await using var rig = await CacheRig.StartAsync(Serve(body), replaceServices: RoomWithFree(freeMiB));
        var miss = await rig.SendAsync("/big");
        Assert.Equal(("MISS", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(miss), CacheRig.Sha256(await miss.Content.ReadAsByteArrayAsync())));
        var entry = await CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, Size);

        // The body's whole pages (the head block and the last partial page go through the page cache either way).
        using (var file = File.OpenHandle(entry, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            long bodyOffset = RandomAccess.GetLength(file) - Size;
            long whole = Size & ~4095L;
            var cached = Syscalls.CachedPages(file, bodyOffset, whole);
            Assert.True(cached.Ok, $"cachestat: errno {cached.Errno}");
            Assert.Equal(room ? whole / 4096 : 0, cached.Bytes);
        }
        Assert.Equal(room ? 0 : Size, await rig.MetricAsync(Fill("directio")));
        Assert.Equal(room ? Size : 0, await rig.MetricAsync(Fill("splice")) + await rig.MetricAsync(Fill("copy")));

        var hit = await rig.SendAsync("/big");
        Assert.Equal(("HIT", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(hit), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync())));
        var after = await rig.SendAsync("/big"); // keep-alive still serves
        Assert.Equal(("HIT", CacheRig.Sha256(body)), (CacheRig.CacheStatusOf(after), CacheRig.Sha256(await after.Content.ReadAsByteArrayAsync())));
        Assert.Equal(1, rig.Origin.Requests);
    }
}
