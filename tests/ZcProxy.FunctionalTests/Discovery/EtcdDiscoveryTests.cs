using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Discovery;
using ZcProxy.Tests.Balancing;

namespace ZcProxy.Tests.Discovery;

/// <summary>Destinations from a real etcd: registered under a lease, expired, etcd down and back, bad values.</summary>
public class EtcdDiscoveryTests(ITestOutputHelper output)
{
    private const string Prefix = "/zcproxy/";
    private const string KeyB = Prefix + "clusters/api/destinations/b";

    private static string WriteConfig(ConfigDirectory dir, EtcdServer etcd, string fileOrigin, bool zeroCopy = true) => dir.WriteMain($$"""
        { "Routes": { "r": { "ClusterId": "api", "Match": { "Path": "/{**rest}" } } },
          "Clusters": { {{ConfigDirectory.Cluster("api", "RoundRobin", ("a", fileOrigin))}} } }
        """, $$"""
          "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} },
          "Discovery": { "Etcd": { "Endpoints": [ "{{etcd.Url}}" ], "Prefix": "{{Prefix}}", "ProbeInterval": "500ms", "RequestTimeout": "1s", "MaxBackoff": "500ms" } }
        """);

    private static string Destination(TestOrigin origin) => $$"""{ "Address": "{{origin.Url}}/" }""";

    private static async Task<InProcessProxy> StartSyncedAsync(string main)
    {
        var proxy = await InProcessProxy.StartAsync(main);
        await Poll.UntilAsync(() => proxy.Get<DiscoveryStatus>().Get(EtcdDiscovery.Source)?.Current == true, "the first sync with etcd");
        return proxy;
    }

    private static bool Serves(InProcessProxy proxy, string destinationId) =>
        proxy.Get<FileConfigProvider>().Current.Clusters.Single(c => c.ClusterId == "api").Destinations!.ContainsKey(destinationId);

    [EtcdTheory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task LeasedRegistration_ReceivesTraffic_WithinASecond(bool zeroCopy)
    {
        await using var etcd = await EtcdServer.StartAsync();
        await using var a = await TestOrigin.StartAsync("a");
        await using var b = await TestOrigin.StartAsync("b");
        using var dir = new ConfigDirectory();
        await using var proxy = await StartSyncedAsync(WriteConfig(dir, etcd, a.Url, zeroCopy));
        using var client = new HttpClient { BaseAddress = new Uri(proxy.Url) };
        var lease = await etcd.GrantLeaseAsync(30);
        Assert.StartsWith("a ", await client.GetStringAsync("/hello"));
        // The clock starts when etcd announces the registration to its watchers (the test's own watch, as the proxy's
        // is), not when the put is sent: etcd's commit (a WAL fsync) is not the proxy's latency, and on a loaded CI
        // machine it alone took hundreds of milliseconds. What is left for the 1 s bound is the proxy's part: the watch
        // event read, the destinations published, the routing updated. A proxy that learned of b only from a periodic
        // resync or a delayed reload would still miss it.
        using var watchHttp = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        var gateway = new EtcdGateway(watchHttp, new Uri(etcd.Url + "/"));
        var (revision, _) = await gateway.RangeAsync(Prefix, CancellationToken.None);
        using var stopWatch = new CancellationTokenSource();
        var announcedAt = WatchForAsync(gateway, revision + 1, deleted: false, stopWatch.Token);

        var giveUp = Stopwatch.StartNew();
        await etcd.PutAsync(KeyB, Destination(b), lease);
        // Requests back to back (bounded): the first one b answers marks the moment, to the request's own latency.
        var answers = new List<string>();
        long servedAt = 0;
        while (giveUp.Elapsed < TimeSpan.FromSeconds(10) && servedAt == 0)
        {
            answers.Add((await client.GetStringAsync("/hello"))[..1]);
            if (answers[^1] == "b") servedAt = Stopwatch.GetTimestamp();
        }
        Assert.Contains("b", answers);
        var announced = await announcedAt.WaitAsync(TimeSpan.FromSeconds(10));
        await stopWatch.CancelAsync();
        var elapsed = Stopwatch.GetElapsedTime(announced, servedAt);

        output.WriteLine($"etcd put -> first request served by the new backend: {giveUp.Elapsed.TotalMilliseconds:0} ms; " +
            $"etcd's watch event -> served: {elapsed.TotalMilliseconds:0} ms ({answers.Count} requests)");
        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"the registration took {elapsed.TotalMilliseconds:0} ms from etcd's announcement to receive traffic");
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [EtcdFact]
    public async Task LeaseExpiry_RemovesTheBackend_WithNoFailedClientRequest()
    {
        await using var etcd = await EtcdServer.StartAsync();
        await using var a = await TestOrigin.StartAsync("a");
        var b = await TestOrigin.StartAsync("b");
        using var dir = new ConfigDirectory();
        await using var proxy = await StartSyncedAsync(WriteConfig(dir, etcd, a.Url));
        using var client = new HttpClient { BaseAddress = new Uri(proxy.Url) };
        // The test's own watch timestamps the moment etcd deletes the key (the lease expired).
        using var watchHttp = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        var gateway = new EtcdGateway(watchHttp, new Uri(etcd.Url + "/"));
        var (revision, _) = await gateway.RangeAsync(Prefix, CancellationToken.None);
        using var stopWatch = new CancellationTokenSource();
        var deletedAt = WatchForAsync(gateway, revision + 1, deleted: true, stopWatch.Token);

        var lease = await etcd.GrantLeaseAsync(2); // etcd's shortest practical TTL; nobody keeps it alive
        await etcd.PutAsync(KeyB, Destination(b), lease);
        await Poll.UntilAsync(async () => (await client.GetStringAsync("/")).StartsWith("b ", StringComparison.Ordinal), "b to receive traffic");
        await b.DisposeAsync(); // the backend dies; its lease runs out
        // The moment the proxy drops b, stamped by a tight look at its configuration (not after a round of client
        // requests and a poll's back-off, which under load alone took longer than the bound below).
        var removedAt = Task.Run(async () =>
        {
            var giveUp = Stopwatch.GetTimestamp() + 20 * Stopwatch.Frequency;
            while (Serves(proxy, "b") && Stopwatch.GetTimestamp() < giveUp) await Task.Delay(2);
            return Stopwatch.GetTimestamp();
        });

        int requests = 0;
        var failures = new List<string>();
        await Poll.UntilAsync(async () =>
        {
            for (int i = 0; i < 5; i++, requests++)
            {
                using var response = await client.GetAsync("/");
                if (!response.IsSuccessStatusCode) failures.Add($"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }
            return !Serves(proxy, "b");
        }, "the expired registration to be removed", TimeSpan.FromSeconds(15));
        var deleted = await deletedAt.WaitAsync(TimeSpan.FromSeconds(10));
        var removed = await removedAt.WaitAsync(TimeSpan.FromSeconds(10));
        await stopWatch.CancelAsync();

        output.WriteLine($"lease expiry (etcd's DELETE) -> destination removed: {Stopwatch.GetElapsedTime(deleted, removed).TotalMilliseconds:0} ms; {requests} requests, {failures.Count} failed");
        Assert.Empty(failures);
        Assert.True(Stopwatch.GetElapsedTime(deleted, removed) < TimeSpan.FromSeconds(1));
    }

    /// <summary>The moment the test's own watch sees etcd put (or delete) b's key.</summary>
    private static async Task<long> WatchForAsync(EtcdGateway gateway, long from, bool deleted, CancellationToken cancellationToken)
    {
        await foreach (var batch in gateway.WatchAsync(Prefix, from, cancellationToken))
            if (batch.Any(e => e.Deleted == deleted && e.Kv.Key == KeyB)) return Stopwatch.GetTimestamp();
        throw new InvalidOperationException("the watch ended");
    }

    [EtcdFact]
    public async Task EtcdStopped_TrafficUnaffected_ViewMarkedStale_RecoversWhenEtcdReturns()
    {
        await using var etcd = await EtcdServer.StartAsync();
        await using var a = await TestOrigin.StartAsync("a");
        await using var b = await TestOrigin.StartAsync("b");
        await using var c = await TestOrigin.StartAsync("c");
        using var dir = new ConfigDirectory();
        await using var proxy = await StartSyncedAsync(WriteConfig(dir, etcd, a.Url));
        using var client = new HttpClient { BaseAddress = new Uri(proxy.Url) };
        using var admin = new HttpClient { BaseAddress = new Uri(proxy.AdminUrl) };
        await etcd.PutAsync(KeyB, Destination(b));
        await Poll.UntilAsync(() => Serves(proxy, "b"), "b to be served");

        var stoppedAt = DateTimeOffset.UtcNow;
        await etcd.StopAsync();
        await Poll.UntilAsync(() => proxy.Get<DiscoveryStatus>().Get(EtcdDiscovery.Source)?.Current == false, "the view to be marked stale");

        // The last good set stays in force: both destinations keep answering.
        var answers = new List<string>();
        for (int i = 0; i < 10; i++) answers.Add((await client.GetStringAsync("/"))[..1]);
        Assert.Contains("a", answers);
        Assert.Contains("b", answers);
        using (var status = JsonDocument.Parse(await admin.GetStringAsync("/status")))
        {
            var etcdView = status.RootElement.GetProperty("discovery").EnumerateArray().Single();
            Assert.False(etcdView.GetProperty("current").GetBoolean());
            var staleSince = etcdView.GetProperty("staleSince").GetDateTimeOffset();
            Assert.InRange(staleSince, stoppedAt, DateTimeOffset.UtcNow);
            output.WriteLine($"/status while etcd is down: {etcdView}");
        }
        var metrics = await admin.GetStringAsync("/metrics");
        Assert.Contains("zcproxy_discovery_up{source=\"etcd\"} 0", metrics);
        Assert.Matches("zcproxy_discovery_stale_since_seconds\\{source=\"etcd\"\\} [1-9]", metrics);

        await etcd.RestartAsync();
        await Poll.UntilAsync(() => proxy.Get<DiscoveryStatus>().Get(EtcdDiscovery.Source)?.Current == true, "the view to be current again");
        await etcd.PutAsync(Prefix + "clusters/api/destinations/c", Destination(c));
        await Poll.UntilAsync(async () => (await client.GetStringAsync("/")).StartsWith("c ", StringComparison.Ordinal), "c, registered after the recovery, to receive traffic");
        Assert.Contains("zcproxy_discovery_up{source=\"etcd\"} 1", await admin.GetStringAsync("/metrics"));
    }

    [EtcdFact]
    public async Task EtcdPartitioned_TheProbeMarksTheViewStale_TheWatchResumesAfterwards()
    {
        await using var etcd = await EtcdServer.StartAsync();
        await using var a = await TestOrigin.StartAsync("a");
        await using var b = await TestOrigin.StartAsync("b");
        using var dir = new ConfigDirectory();
        await using var proxy = await StartSyncedAsync(WriteConfig(dir, etcd, a.Url)); // ProbeInterval 500ms, RequestTimeout 1s
        using var client = new HttpClient { BaseAddress = new Uri(proxy.Url) };

        await etcd.SetFrozenAsync(true); // no FIN, no RST: only the probe can tell
        try
        {
            await Poll.UntilAsync(() => proxy.Get<DiscoveryStatus>().Get(EtcdDiscovery.Source) is { Current: false, LastError: { } error } && error.Contains("no answer"),
                "the silent etcd to be detected", TimeSpan.FromSeconds(10));
            Assert.StartsWith("a ", await client.GetStringAsync("/"));
        }
        finally
        {
            await etcd.SetFrozenAsync(false);
        }
        await Poll.UntilAsync(() => proxy.Get<DiscoveryStatus>().Get(EtcdDiscovery.Source)?.Current == true, "the view to be current again");
        await etcd.PutAsync(KeyB, Destination(b));
        await Poll.UntilAsync(() => Serves(proxy, "b"), "a registration after the partition to be served");
    }

    [EtcdFact]
    public async Task MalformedValues_AreRejectedAndLogged_TheRestApplies()
    {
        await using var etcd = await EtcdServer.StartAsync();
        await using var a = await TestOrigin.StartAsync("a");
        await using var good = await TestOrigin.StartAsync("good");
        using var dir = new ConfigDirectory();
        var main = WriteConfig(dir, etcd, a.Url);
        await etcd.PutAsync(Prefix + "clusters/api/destinations/badjson", "{ \"Address\": ");
        await etcd.PutAsync(Prefix + "clusters/api/destinations/badaddress", "{ \"Address\": \"ftp://10.0.0.9/\" }");
        await etcd.PutAsync(Prefix + "clusters/api/destinations/badweight", $$"""{ "Address": "{{good.Url}}/", "Metadata": { "Weight": "lots" } }""");
        await etcd.PutAsync(Prefix + "clusters/nope/destinations/x", Destination(good));
        await etcd.PutAsync(Prefix + "clusters/api/destinations/good", Destination(good));

        using var process = ProxyProcess.Start(["--config", main]);
        var (proxyUrl, adminUrl) = await process.WaitForListenersAsync();
        await process.WaitForLineAsync("discovery: not served: etcd /zcproxy/clusters/api/destinations/badjson: invalid destination JSON");
        await process.WaitForLineAsync("discovery: not served: etcd /zcproxy/clusters/api/destinations/badaddress: Address: 'ftp://10.0.0.9/' is not an absolute http:// or https:// URL");
        await process.WaitForLineAsync("discovery: not served: etcd /zcproxy/clusters/api/destinations/badweight: Metadata.Weight: 'lots' is not a weight");
        await process.WaitForLineAsync("discovery: not served: etcd /zcproxy/clusters/nope/destinations/x: cluster 'nope' is not defined in any configuration file");

        using var client = new HttpClient { BaseAddress = new Uri(proxyUrl) };
        await Poll.UntilAsync(async () => (await client.GetStringAsync("/")).StartsWith("good ", StringComparison.Ordinal), "the valid registration to receive traffic");
        using var admin = new HttpClient { BaseAddress = new Uri(adminUrl) };
        using var status = JsonDocument.Parse(await admin.GetStringAsync("/status"));
        var destinations = status.RootElement.GetProperty("clusters").EnumerateArray().Single(c => c.GetProperty("id").GetString() == "api")
            .GetProperty("destinations").EnumerateArray().Select(d => d.GetProperty("id").GetString()).ToList();
        Assert.Equal(["a", "good"], destinations);
        Assert.Equal(4, status.RootElement.GetProperty("discovery")[0].GetProperty("rejected").GetInt32());
        Assert.Equal(1, process.CountLines("badjson")); // logged once, not on every change
    }
}
