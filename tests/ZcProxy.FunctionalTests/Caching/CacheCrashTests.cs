using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>The real executable killed with SIGKILL in the middle of a fill: after restart nothing partial is ever served.</summary>
public class CacheCrashTests
{
    [Fact]
    public async Task KilledDuringFill_RestartServesNoPartialEntry_AndRemovesTheTempFile()
    {
        var body = CacheRig.RandomBody(4 << 20, 21);
        int calls = 0;
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var origin = await TestOrigin.StartAsync("origin", app => app.MapGet("/big", async (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            c.Response.ContentLength = body.Length;
            if (Interlocked.Increment(ref calls) == 1)
            {
                await c.Response.Body.WriteAsync(body.AsMemory(0, 2 << 20));
                await c.Response.Body.FlushAsync();
                await Task.WhenAny(stalled.Task, Task.Delay(Timeout.Infinite, c.RequestAborted)); // never finishes this body
                return;
            }
            await c.Response.Body.WriteAsync(body);
        }));
        using var dir = new ConfigDirectory();
        var cachePath = Path.Combine(dir.Root, "cache");
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "o", "Match": { "Path": "/{**rest}" }, "Metadata": { "Cache": "on" } } },
              "Clusters": { {{ConfigDirectory.Cluster("o", ("o1", origin.Url))}} } }
            """, $$"""
            "Cache": { "Path": "{{cachePath}}", "MinFreeDisk": 0 },
            "AccessLog": { "Path": "off" }
            """);
        IEnumerable<string> Files(string pattern) => Directory.Exists(cachePath) ? Directory.EnumerateFiles(cachePath, pattern, SearchOption.AllDirectories) : [];
        HttpRequestMessage Get(string url) => new(HttpMethod.Get, url + "/big") { Headers = { Host = "cache.test" } };

        using (var first = ProxyProcess.Start(["--config", dir.MainFile]))
        {
            var (url, _) = await first.WaitForListenersAsync();
            using var response = await CacheRig.Client.SendAsync(Get(url), HttpCompletionOption.ResponseHeadersRead);
            await using var stream = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[64 * 1024];
            long received = 0;
            while (received < 1 << 20) received += await stream.ReadAsync(buffer);
            await Poll.UntilAsync(() => Files("*.tmp").Any(f => new FileInfo(f).Length > 1 << 20), "a temp file with part of the body");
            first.Signal("KILL");
            await first.WaitForExitAsync(TimeSpan.FromSeconds(20));
        }
        stalled.TrySetResult();
        Assert.NotEmpty(Files("*.tmp"));

        using var second = ProxyProcess.Start(["--config", dir.MainFile]);
        var (url2, admin2) = await second.WaitForListenersAsync();
        await second.WaitForLineAsync("cache loaded");
        Assert.Empty(Files("*.tmp"));
        var again = await CacheRig.Client.SendAsync(Get(url2));
        Assert.Equal("MISS", CacheRig.CacheStatusOf(again));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await again.Content.ReadAsByteArrayAsync()));
        // The client has the MISS's last byte a moment before the fill commits its entry: a request sent at once was
        // sometimes a second MISS under load. So wait (bounded) until the proxy counts the entry.
        await Poll.UntilAsync(async () => System.Text.RegularExpressions.Regex.IsMatch(await CacheRig.Client.GetStringAsync(admin2 + "/metrics"),
            "^zcproxy_cache_entries 1$", System.Text.RegularExpressions.RegexOptions.Multiline), "the MISS's entry to be committed");
        var hit = await CacheRig.Client.SendAsync(Get(url2));
        Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
        Assert.Equal(CacheRig.Sha256(body), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync()));
    }
}
