using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Configuration;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Configuration;

public class ReloadTests
{
    private static readonly HttpClient Client = new() { Timeout = TimeSpan.FromSeconds(30) };

    [Fact]
    public async Task SymlinkSwapOfIncludedFolder_IsReloaded()
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        // Kubernetes-ConfigMap style: routes.d/current -> v1, swapped atomically to v2 by renaming a new link over it.
        Directory.CreateDirectory(Path.Combine(dir.Root, "v1"));
        Directory.CreateDirectory(Path.Combine(dir.Root, "v2"));
        File.WriteAllText(Path.Combine(dir.Root, "v1", "r.json"), """{ "ReverseProxy": { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } } } }""");
        File.WriteAllText(Path.Combine(dir.Root, "v2", "r.json"), """{ "ReverseProxy": { "Routes": { "r": { "ClusterId": "b", "Match": { "Path": "/{**rest}" } } } } }""");
        var link = Path.Combine(dir.Root, "current");
        Directory.CreateSymbolicLink(link, Path.Combine(dir.Root, "v1"));
        dir.WriteAtomically(dir.MainFile, $$"""
            { "Listen": [ { "Url": "http://127.0.0.1:0" } ], "Include": [ "current/*.json" ],
              "ReverseProxy": { "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}}, {{ConfigDirectory.Cluster("b", ("b1", b.Url))}} } } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        Assert.Equal("A GET /x", await Client.GetStringAsync(proxy.Url + "/x"));

        var newLink = Path.Combine(dir.Root, "current.new");
        Directory.CreateSymbolicLink(newLink, Path.Combine(dir.Root, "v2"));
        using (var mv = System.Diagnostics.Process.Start("mv", ["-T", newLink, link])) // rename(2) over the old link
            await mv.WaitForExitAsync();

        await Poll.UntilAsync(async () => await Client.GetStringAsync(proxy.Url + "/x") == "B GET /x", "the swapped routes to answer");
    }

    [Fact]
    public async Task Reload_DoesNotDisturbRequestsInFlight()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var slow = await TestOrigin.StartAsync("slow", app => app.MapGet("/slow", async () =>
        {
            entered.TrySetResult();
            await release.Task;
            return Results.Text("finished");
        }));
        await using var other = await TestOrigin.StartAsync("other");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""{ "Clusters": { {{ConfigDirectory.Cluster("s", ("s1", slow.Url))}}, {{ConfigDirectory.Cluster("o", ("o1", other.Url))}} } }""");
        dir.WriteAtomically("routes.d/r.json", """{ "ReverseProxy": { "Routes": { "r": { "ClusterId": "s", "Match": { "Path": "/{**rest}" } } } } }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var lifecycle = proxy.Get<ConfigLifecycle>();

        var inFlight = Client.GetAsync(proxy.Url + "/slow");
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(20));
        dir.WriteAtomically("routes.d/r.json", """{ "ReverseProxy": { "Routes": { "r": { "ClusterId": "o", "Match": { "Path": "/{**rest}" } } } } }""");
        await Poll.UntilAsync(() => lifecycle.Last is { Applied: true }, "the reload to be applied");
        Assert.Equal("other GET /new", await Client.GetStringAsync(proxy.Url + "/new"));

        release.SetResult();
        var response = await inFlight;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("finished", await response.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// A log and a cache an operator put in the config folder, written all the time: no file-system event of theirs
    /// reaches the reload check, and they do not hold up a route edit (a stream of events within the quiet period kept
    /// the check from ever running: the edit waited until the writing stopped).
    /// </summary>
    [Fact]
    public async Task WritesToOtherFilesInTheConfigFolder_WakeNothing_ARouteEditStillReloads()
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""{ "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}}, {{ConfigDirectory.Cluster("b", ("b1", b.Url))}} } }""");
        dir.WriteAtomically("routes.d/r.json", """{ "ReverseProxy": { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } } } }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var watcher = proxy.Get<IEnumerable<Microsoft.Extensions.Hosting.IHostedService>>().OfType<ConfigWatcher>().Single();
        Assert.Equal("A GET /x", await Client.GetStringAsync(proxy.Url + "/x"));

        // A thread of its own, writing every few milliseconds: no pause near the 300 ms quiet period, even on a loaded box.
        int writes = 0;
        bool stop = false;
        var cache = Directory.CreateDirectory(Path.Combine(dir.Root, "cache", "a1")).FullName;
        var writer = new Thread(() =>
        {
            using var log = new StreamWriter(Path.Combine(dir.Root, "proxy.log"), append: true);
            while (!Volatile.Read(ref stop))
            {
                log.WriteLine("a line");
                log.Flush();
                File.WriteAllText(Path.Combine(cache, $"e{writes % 8}"), "an entry");
                File.WriteAllText(Path.Combine(dir.Root, "routes.d", "notes.txt"), "not a *.json");
                Interlocked.Increment(ref writes);
                Thread.Sleep(5);
            }
        }) { IsBackground = true };
        writer.Start();
        try
        {
            long before = watcher.ConfigEvents;
            await Poll.UntilAsync(() => Volatile.Read(ref writes) >= 100, "the other files written for a while");
            Assert.Equal(before, watcher.ConfigEvents);

            dir.WriteAtomically("routes.d/r.json", """{ "ReverseProxy": { "Routes": { "r": { "ClusterId": "b", "Match": { "Path": "/{**rest}" } } } } }""");
            await Poll.UntilAsync(async () => await Client.GetStringAsync(proxy.Url + "/x") == "B GET /x", "the edited route, while the other files are still written");
            Assert.True(watcher.ConfigEvents > before);
        }
        finally
        {
            Volatile.Write(ref stop, true);
            writer.Join();
        }
    }

    /// <summary>Twenty files written in a burst all end up applied (the debouncing itself: <see cref="ReloadSignalTests"/>, on a fake clock).</summary>
    [Fact]
    public async Task BurstOfEdits_EndsWithEveryEditApplied()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""{ "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var lifecycle = proxy.Get<ConfigLifecycle>();

        const int edits = 20;
        for (int i = 0; i < edits; i++)
            dir.WriteAtomically($"routes.d/r{i}.json", $$"""{ "ReverseProxy": { "Routes": { "r{{i}}": { "ClusterId": "a", "Match": { "Path": "/r{{i}}" } } } } }""");

        // Wait for the reload that took the last edit (all 20 routes), not only for /r19 to answer: YARP takes the new
        // routes when the provider signals them, before Reloaded is raised, so /r19 may answer before the count moves.
        await Poll.UntilAsync(() => lifecycle.Last is { Applied: true, Routes: edits }, "a reload with every edited route (the main file has none)");
        for (int i = 0; i < edits; i++)
            Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync(proxy.Url + $"/r{i}")).StatusCode);
    }

    [Fact]
    public async Task ZeroCopyEnabled_ChangedByReload_KeepsItsStartupValueUntilRestart()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        string proxyJson = $$"""{ "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }""";
        dir.WriteMain(proxyJson);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var lifecycle = proxy.Get<ConfigLifecycle>();
        int reloads = 0;
        lifecycle.Reloaded += _ => Interlocked.Increment(ref reloads);

        dir.WriteMain(proxyJson, """ "ZeroCopy": { "Enabled": false, "SpliceThreshold": "1KiB" } """);
        await Poll.UntilAsync(() => Volatile.Read(ref reloads) > 0, "the edit to be reloaded");

        var running = proxy.Get<RuntimeOptions>().Current.ZeroCopy;
        Assert.True(running.Enabled);                  // bound into the listeners at start: kept until a restart
        Assert.Equal(1024, running.SpliceThreshold);   // the rest of the section applies at once
        Assert.Equal("A GET /x", await Client.GetStringAsync(proxy.Url + "/x"));
    }
}
