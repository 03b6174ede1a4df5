using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using System.Text.RegularExpressions;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting.Systemd;

/// <summary>The real executable under a fake systemd: what arrives on NOTIFY_SOCKET, and when.</summary>
public class SdNotifyTests
{
    private static readonly HttpClient Client = new() { Timeout = TimeSpan.FromSeconds(60) };

    private static string OneRoute(string clusterJson) => $$"""
        { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{clusterJson}} } }
        """;

    [Fact]
    public async Task Ready_AfterListenersBound_ThenReloadingAndReady_OnSighupAndOnRejectedEdit()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneRoute(ConfigDirectory.Cluster("a", ("a1", a.Url))));
        using var notify = new NotifySocketListener(useAbstractName: true);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Address });

        var ready = await notify.WaitForAsync("READY=1");
        // READY=1 means the listeners answer: no waiting for the log line first.
        var (url, _) = await proxy.WaitForListenersAsync();
        Assert.Equal("A GET /x", await Client.GetStringAsync(url + "/x"));
        Assert.Equal("serving 1 routes, 1 clusters, 0 connections", NotifySocketListener.Value(notify.Texts[ready], "STATUS"));

        var before = SystemdClock();
        proxy.Signal("HUP");
        var reloading = await notify.WaitForAsync("RELOADING=1");
        var readyAgain = await notify.WaitForAsync("READY=1", occurrence: 2);
        Assert.True(reloading < readyAgain);
        var monotonic = long.Parse(NotifySocketListener.Value(notify.Texts[reloading], "MONOTONIC_USEC")!);
        Assert.InRange(monotonic, before, SystemdClock());
        Assert.StartsWith("serving 1 routes, 1 clusters", NotifySocketListener.Value(notify.Texts[readyAgain], "STATUS"));

        // A broken edit: rejected, yet systemd still hears RELOADING=1 then READY=1, and STATUS names the error.
        dir.WriteAtomically("routes.d/bad.json", """{ "ReverseProxy": { "Routes": { "b": { "ClusterId": "nope", "Match": { "Path": "/b" } } } } }""");
        await notify.WaitForAsync("RELOADING=1", occurrence: 2);
        var rejected = await notify.WaitForAsync("READY=1", occurrence: 3);
        var status = NotifySocketListener.Value(notify.Texts[rejected], "STATUS")!;
        Assert.Contains("last reload rejected", status);
        Assert.Contains("bad.json: $.ReverseProxy.Routes.b.ClusterId: cluster 'nope' is not defined", status);
        Assert.StartsWith("serving 1 routes, 1 clusters", status);
        Assert.Equal("A GET /still", await Client.GetStringAsync(url + "/still"));
    }

    [Fact]
    public async Task RejectedReload_OfAValueThatUsedToThrow_StillEndsWithReadyAndAStatusSayingWhy()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneRoute(ConfigDirectory.Cluster("a", ("a1", a.Url))));
        using var notify = new NotifySocketListener();
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Address });
        await notify.WaitForAsync("READY=1");
        var (url, _) = await proxy.WaitForListenersAsync();

        // A duration TimeSpan cannot hold: reading it used to throw, leaving systemd at RELOADING=1 with no READY=1.
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { "a": { "Destinations": { "a1": { "Address": "{{a.Url}}", "Metadata": { "SlowStart": "99999999999d" } } } } } }
            """);
        await notify.WaitForAsync("RELOADING=1");
        var ready = await notify.WaitForAsync("READY=1", occurrence: 2);

        var status = NotifySocketListener.Value(notify.Texts[ready], "STATUS")!;
        Assert.StartsWith("serving 1 routes, 1 clusters", status);
        Assert.Contains("last reload rejected: ", status);
        Assert.Contains("$.ReverseProxy.Clusters.a.Destinations.a1.Metadata.SlowStart: '99999999999d' is not a duration", status);
        Assert.Equal("A GET /still", await Client.GetStringAsync(url + "/still"));
    }

    [Fact]
    public async Task Watchdog_PingsAtHalfOfWatchdogUsec()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneRoute(ConfigDirectory.Cluster("a", ("a1", "http://127.0.0.1:1/"))));
        using var notify = new NotifySocketListener();
        const int watchdogMs = 400; // pings expected every 200 ms
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], new Dictionary<string, string>
        {
            ["NOTIFY_SOCKET"] = notify.Address,
            ["WATCHDOG_USEC"] = (watchdogMs * 1000).ToString(),
        });

        // The interval the executable took from WATCHDOG_USEC: half of it (pinging at the full value would lose the race
        // with systemd's timer). The ping thread waits exactly this long between pings (SystemdWatchdogTests: and
        // stops pinging while the thread pool is wedged).
        await proxy.WaitForLineAsync($"systemd watchdog: pinging every {watchdogMs / 2} ms");
        // Pings keep coming, spaced by it. Counting pings over a fixed window took 3 s and miscounted under load (a
        // late heartbeat skips a ping); a load only delays pings, so only a lower bound on their spacing is asserted:
        // pinging far faster would mean the interval is ignored. One interval of slack for a late receive stamp.
        const int Pings = 5;
        await Poll.UntilAsync(() => notify.Texts.Count(t => t == "WATCHDOG=1") >= Pings, $"{Pings} watchdog pings", TimeSpan.FromSeconds(30));
        var stamps = notify.Messages.Where(m => m.Text == "WATCHDOG=1").Select(m => m.Timestamp).Take(Pings).ToList();
        var spread = Stopwatch.GetElapsedTime(stamps[0], stamps[^1]);
        Assert.True(spread >= TimeSpan.FromMilliseconds((Pings - 2) * watchdogMs / 2), $"{Pings} pings within {spread.TotalMilliseconds:0} ms");
        Assert.Equal(0, notify.Texts.Count(t => t.Contains("STOPPING=1")));
    }

    [Fact]
    public async Task Sigterm_SendsStopping_FinishesInFlightRequest_ExitsZero()
    {
        var release = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        await using var a = await TestOrigin.StartAsync("A", app => app.MapGet("/slow", async () =>
        {
            started.TrySetResult();
            await release.Task.WaitAsync(TimeSpan.FromSeconds(30));
            return "slow done";
        }));
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneRoute(ConfigDirectory.Cluster("a", ("a1", a.Url))), "\"DrainTimeout\": \"30s\"");
        using var notify = new NotifySocketListener();
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Address });
        await notify.WaitForAsync("READY=1");
        var (url, _) = await proxy.WaitForListenersAsync();

        var inFlight = Client.GetAsync(url + "/slow");
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        proxy.Signal("TERM");
        var stopping = await notify.WaitForAsync("STOPPING=1");
        Assert.StartsWith("draining 1 connections", NotifySocketListener.Value(notify.Texts[stopping], "STATUS"));
        Assert.Equal("35000000", NotifySocketListener.Value(notify.Texts[stopping], "EXTEND_TIMEOUT_USEC")); // DrainTimeout 30s + 5s
        // Draining: new connections are refused while the in-flight request is still waiting for its origin.
        var port = new Uri(url).Port;
        await Poll.UntilAsync(async () =>
        {
            using var probe = new System.Net.Sockets.TcpClient();
            try { await probe.ConnectAsync(System.Net.IPAddress.Loopback, port); return false; }
            catch (System.Net.Sockets.SocketException) { return true; }
        }, "the listener to stop accepting");
        Assert.False(inFlight.IsCompleted);
        Assert.False(proxy.HasExited);

        release.SetResult();
        using var response = await inFlight;
        Assert.Equal("slow done", await response.Content.ReadAsStringAsync());
        await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, proxy.ExitCode);
    }

    [Fact]
    public async Task NotifySocketPointingNowhere_LogsWarning_AndStillServes()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneRoute(ConfigDirectory.Cluster("a", ("a1", a.Url))));
        var nowhere = Path.Combine(dir.Root, "no-such-notify.sock");
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], new Dictionary<string, string> { ["NOTIFY_SOCKET"] = nowhere });

        var (url, _) = await proxy.WaitForListenersAsync();
        await proxy.WaitForLineAsync($"sd_notify: cannot reach NOTIFY_SOCKET={Regex.Escape(nowhere)}");
        // Not under journald (no JOURNAL_STREAM): the plain timestamped format, not "<4>" prefixes.
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warn: ", proxy.Lines.First(l => l.Contains("sd_notify: cannot reach")));
        Assert.Equal("A GET /x", await Client.GetStringAsync(url + "/x"));
        Assert.False(proxy.HasExited);
    }

    /// <summary>CLOCK_MONOTONIC in µs, the clock MONOTONIC_USEC is read from (Stopwatch reads it on Linux).</summary>
    private static long SystemdClock() => (long)((Int128)Stopwatch.GetTimestamp() * 1_000_000 / Stopwatch.Frequency);
}
