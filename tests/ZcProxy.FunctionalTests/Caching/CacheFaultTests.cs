using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;
using ZcProxy.Core.Caching;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>Disk full, unwritable directory, corrupt and leftover files, hostile keys, oversized entries.</summary>
public class CacheFaultTests(ITestOutputHelper output)
{
    internal static readonly bool IsRoot = Environment.UserName == "root" || RunQuiet("id", "-u").Trim() == "0";

    private static Action<WebApplication> Chunked(string path, byte[] body) => app => app.MapGet(path, async (HttpContext c) =>
    {
        c.Response.Headers.CacheControl = "max-age=600";
        for (int i = 0; i < body.Length; i += 64 * 1024)
        {
            await c.Response.Body.WriteAsync(body.AsMemory(i, Math.Min(64 * 1024, body.Length - i)));
            await c.Response.Body.FlushAsync(); // no Content-Length: chunked, so the cache learns the size only while filling
        }
    });

    [Fact]
    public async Task DiskFull_DuringFill_ClientGetsEverything_PartialRemoved_ErrorCounted()
    {
        if (!IsRoot) { output.WriteLine("SKIPPED: mounting a 2 MiB tmpfs needs root"); return; }
        using var mount = TmpfsMount.Create("size=2m");
        var body = CacheRig.RandomBody(3 << 20, 11);
        await using var rig = await CacheRig.StartAsync(Chunked("/big", body), "\"MinFreeDisk\": 0", cachePath: mount.Path);

        for (int i = 0; i < 2; i++)
        {
            var response = await rig.SendAsync("/big");
            Assert.Equal("MISS", CacheRig.CacheStatusOf(response));
            Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await response.Content.ReadAsByteArrayAsync()));
        }
        Assert.Empty(Directory.EnumerateFiles(mount.Path, "*", SearchOption.AllDirectories));
        Assert.Equal(2, await rig.MetricAsync("zcproxy_cache_errors_total{kind=\"fill\"}"));
        Assert.Equal(2, rig.Origin.Requests);
    }

    /// <summary>
    /// A Content-Length body is spliced and teed into the entry file by the kernel; the disk fills up half-way (another
    /// file takes the room while the origin pauses): splice into the file fails with ENOSPC, the fill is abandoned and
    /// counted, the client still gets every byte, and the connection carries the next request.
    /// </summary>
    [Fact]
    public async Task DiskFull_DuringSplicedFill_ClientGetsEverything_PartialRemoved_ErrorCounted()
    {
        if (!IsRoot) { output.WriteLine("SKIPPED: mounting a tmpfs needs root"); return; }
        using var mount = TmpfsMount.Create("size=4m");
        var body = CacheRig.RandomBody(3 << 20, 13);
        var paused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/sized", async (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            c.Response.ContentLength = body.Length;
            await c.Response.Body.WriteAsync(body.AsMemory(0, 1 << 20));
            await c.Response.Body.FlushAsync();
            paused.TrySetResult();
            await resume.Task;
            await c.Response.Body.WriteAsync(body.AsMemory(1 << 20));
        }), "\"MinFreeDisk\": 0", cachePath: Path.Combine(mount.Path, "cache"));

        var request = rig.SendAsync("/sized");
        await paused.Task;
        // The fill has started and holds the first MiB (written by the kernel from the tee) before the disk fills up.
        var cacheDir = Path.Combine(mount.Path, "cache");
        await Poll.UntilAsync(() => Directory.EnumerateFiles(cacheDir, "*.tmp", SearchOption.AllDirectories).Any(f => new FileInfo(f).Length > 1 << 20),
            "the temp file to hold the first MiB");
        var filler = Path.Combine(mount.Path, "filler");
        await File.WriteAllBytesAsync(filler, new byte[(int)(new DriveInfo(mount.Path).AvailableFreeSpace - (256 << 10))]);
        resume.SetResult();
        var response = await request;
        Assert.Equal("MISS", CacheRig.CacheStatusOf(response));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await response.Content.ReadAsByteArrayAsync()));
        Assert.Equal(1, await rig.MetricAsync("zcproxy_cache_errors_total{kind=\"fill\"}"));
        Assert.True(await rig.MetricAsync("zcproxy_cache_fill_bytes_total{mechanism=\"splice\"}") > 0, "the fill was being teed by splice");
        Assert.Empty(Directory.EnumerateFiles(cacheDir, "*", SearchOption.AllDirectories));
        File.Delete(filler);
        var again = await rig.SendAsync("/nocache/x"); // the proxy still serves; the pooled client connection was reusable
        Assert.NotEqual(500, (int)again.StatusCode);
    }

    [Fact]
    public async Task UnwritableCacheDir_ClientGetsEverything_ErrorCounted()
    {
        if (!IsRoot) { output.WriteLine("SKIPPED: a read-only tmpfs mount needs root (chmod does not stop root)"); return; }
        using var mount = TmpfsMount.Create("size=4m");
        var body = CacheRig.RandomBody(300_000, 12);
        await using var rig = await CacheRig.StartAsync(Chunked("/r", body), "\"MinFreeDisk\": 0", cachePath: mount.Path);
        mount.RemountReadOnly();

        var response = await rig.SendAsync("/r");
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await response.Content.ReadAsByteArrayAsync()));
        Assert.Equal(1, await rig.MetricAsync("zcproxy_cache_errors_total{kind=\"fill\"}"));
        Assert.Equal("MISS", (await rig.GetAsync("/r")).Status);
    }

    [Fact]
    public async Task CacheDirGoneAfterStart_ProxyStillServes_FillsCounted()
    {
        // A cache directory that is unusable at start stops the start (Hosting/StartupFailureTests); one that breaks
        // later costs the fills, never the responses.
        var body = CacheRig.RandomBody(10_000, 16);
        await using var rig = await CacheRig.StartAsync(Chunked("/r", body), "\"MinFreeDisk\": 0");
        await Poll.UntilAsync(() => rig.Proxy.Get<DiskCache>().Loaded, "the start-up scan of the cache directory");
        Directory.Delete(rig.CachePath, recursive: true);
        File.WriteAllText(rig.CachePath, ""); // a file where the directory was: no entry can be created
        for (int i = 0; i < 2; i++)
        {
            var response = await rig.SendAsync("/r");
            Assert.Equal("MISS", CacheRig.CacheStatusOf(response));
            Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await response.Content.ReadAsByteArrayAsync()));
        }
        Assert.Equal(2, await rig.MetricAsync("zcproxy_cache_errors_total{kind=\"fill\"}"));
    }

    [Theory]
    [InlineData("truncate")]
    [InlineData("garble-header")]
    public async Task CorruptEntry_IsAMiss_AndRemoved(string damage)
    {
        var body = CacheRig.RandomBody(20_000, 13);
        await using var rig = await CacheRig.StartAsync(Chunked("/c", body));
        await rig.SendAsync("/c");
        var file = Assert.Single(rig.EntryFiles());
        using (var fs = new FileStream(file, FileMode.Open, FileAccess.ReadWrite))
        {
            if (damage == "truncate") fs.SetLength(fs.Length - 1);
            else { fs.Position = 70; int b = fs.ReadByte(); fs.Position = 70; fs.WriteByte((byte)(b ^ 0xFF)); }
        }

        var response = await rig.SendAsync("/c");
        Assert.Equal("MISS", CacheRig.CacheStatusOf(response));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await response.Content.ReadAsByteArrayAsync()));
        Assert.Equal(1, await rig.MetricAsync("zcproxy_cache_errors_total{kind=\"corrupt\"}"));
        Assert.Equal("HIT", (await rig.GetAsync("/c")).Status); // stored afresh, intact
    }

    [Fact]
    public async Task Restart_LeftoverTempAndTruncatedEntries_DeletedAtLoad_NeverServed()
    {
        var body = CacheRig.RandomBody(20_000, 14);
        await using var rig = await CacheRig.StartAsync(app =>
        {
            Chunked("/good", body)(app);
            Chunked("/cut", body)(app);
        });
        // The key has the Host; a fixed one keeps keys equal across the restart (which gets a new port).
        void Host(HttpRequestMessage r) => r.Headers.Host = "cache.test";
        await rig.SendAsync("/good", Host);
        await rig.SendAsync("/cut", Host);
        var cut = rig.Proxy.Get<DiskCache>().PathFor(DiskCache.VariantHash("http://cache.test/cut", []));
        var good = rig.EntryFiles().Single(f => f != cut);
        var leftover = good + ".999-deadbeef.tmp";
        await rig.RestartProxyAsync(() =>
        {
            // What a kill -9 leaves: a half-written temp file beside the entries; and a short entry, as a file system
            // that lost data (or a writer that bypassed the rename) would leave it.
            using (var fs = new FileStream(cut, FileMode.Open)) fs.SetLength(fs.Length / 2);
            File.WriteAllBytes(leftover, new byte[5000]);
        });
        var cacheService = rig.Proxy.Get<DiskCache>();
        await Poll.UntilAsync(() => cacheService.Loaded, "the cache loader");
        Assert.False(File.Exists(leftover));
        Assert.False(File.Exists(cut));
        Assert.True(File.Exists(good));
        Assert.Equal("HIT", (await rig.GetAsync("/good", Host)).Status);
        var again = await rig.SendAsync("/cut", Host);
        Assert.Equal("MISS", CacheRig.CacheStatusOf(again));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await again.Content.ReadAsByteArrayAsync()));
    }

    [Fact]
    public async Task KeysWithPathCharacters_StayInsideTheCacheDir()
    {
        await using var rig = await CacheRig.StartAsync(app => app.MapFallback((HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            return "x";
        }));
        foreach (var p in new[] { "/..%2F..%2F..%2Fescape", "/%2e%2e/%2e%2e/escape2", "/a/../../b", "/x?k=../../../../tmp/evil" })
            await rig.SendAsync(p);
        var root = Path.GetFullPath(rig.CachePath);
        var files = rig.EntryFiles().ToList();
        Assert.NotEmpty(files);
        foreach (var f in files)
        {
            Assert.StartsWith(root + "/", Path.GetFullPath(f));
            Assert.Matches("^[0-9a-f]{64}$", Path.GetFileName(f));
        }
        Assert.Equal(["cache", "routes.d", "zcproxy.json"], Directory.EnumerateFileSystemEntries(rig.Dir.Root).Select(Path.GetFileName).Order());
        var cache = rig.Proxy.Get<DiskCache>();
        Assert.StartsWith(root + "/", cache.PathFor(DiskCache.Hash("../../../etc/passwd")));
    }

    [Fact]
    public async Task OverMaxEntrySize_ServedButNotStored()
    {
        var body = CacheRig.RandomBody(200_000, 15);
        await using var rig = await CacheRig.StartAsync(app =>
        {
            Chunked("/chunked", body)(app);
            app.MapGet("/sized", (HttpContext c) => { c.Response.Headers.CacheControl = "max-age=600"; return Results.Bytes(body); });
        }, "\"MaxEntrySize\": \"64KiB\"");
        foreach (var p in new[] { "/chunked", "/sized", "/chunked", "/sized" })
        {
            var r = await rig.SendAsync(p);
            Assert.Equal("MISS", CacheRig.CacheStatusOf(r));
            Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await r.Content.ReadAsByteArrayAsync()));
        }
        Assert.Empty(rig.EntryFiles());
        Assert.Equal(0, await rig.MetricAsync("zcproxy_cache_errors_total{kind=\"fill\"}"));
    }

    private static string RunQuiet(string file, params string[] args)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var text = p.StandardOutput.ReadToEnd();
            p.WaitForExit(10_000);
            return text;
        }
        catch (System.ComponentModel.Win32Exception) { return ""; }
    }

    /// <summary>A small tmpfs for disk-full tests; unmounted and removed on dispose.</summary>
    internal sealed class TmpfsMount : IDisposable
    {
        private TmpfsMount(string path) => Path = path;
        public string Path { get; }

        public static TmpfsMount Create(string options)
        {
            var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "zcproxy-tmpfs-" + Guid.NewGuid().ToString("N")[..12]);
            Directory.CreateDirectory(path);
            Run("mount", "-t", "tmpfs", "-o", options, "tmpfs", path);
            return new TmpfsMount(path);
        }

        public void RemountReadOnly() => Run("mount", "-o", "remount,ro", Path);

        public void Dispose()
        {
            Run("umount", "-l", Path);
            try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
        }

        private static void Run(string file, params string[] args)
        {
            using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true })!;
            var error = p.StandardError.ReadToEnd();
            if (!p.WaitForExit(10_000) || p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {error}");
        }
    }
}
