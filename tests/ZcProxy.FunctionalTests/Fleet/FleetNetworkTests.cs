using System.Diagnostics;
using Xunit.Abstractions;
using ZcProxy.Core.Caching.Peers;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Fleet;

/// <summary>
/// The fleet as a network of machines (see <see cref="Fleet"/>): three edge nodes, three origins and etcd, each in
/// its own network namespace on a bridge, the real zcproxy executable on the edges.
/// </summary>
[Collection(nameof(FleetNetworkTests))] // one lab at a time: each runs etcd, three origins and three proxies
public class FleetNetworkTests(ITestOutputHelper output)
{
    private const string ApiKey = Fleet.Prefix + "clusters/api/destinations/";

    [NetnsFact]
    public async Task Backends_RegisterAndExpireUnderLeases_AndSurviveEtcdStopping()
    {
        await using var fleet = await Fleet.StartAsync();
        var http = fleet.Http;

        // :: A backend registers under a lease: traffic through every edge, pushed by each edge's watch (milliseconds on a
        // quiet machine, printed below; the 10 s bound is only the poll's: three proxies and etcd share a loaded CI box).
        for (int edge = 0; edge < 3; edge++) Assert.StartsWith("o1 ", await http.GetStringAsync(Fleet.EdgeUrl(edge) + "/api/x")); // warm, as a serving node is
        var lease = await fleet.GrantLeaseAsync(10);
        using var stopKeepAlive = new CancellationTokenSource();
        var keepAlive = fleet.KeepAliveAsync(lease, stopKeepAlive.Token); // o2 runs for the whole test, renewing its lease
        var put = Stopwatch.StartNew();
        await fleet.PutAsync(ApiKey + "o2", $$"""{ "Address": "{{Fleet.OriginUrl(1)}}/" }""", lease);
        // Requests to the three edges in turn; each edge's time is that of its first answer from o2.
        var firstTraffic = new TimeSpan?[3];
        while (put.Elapsed < TimeSpan.FromSeconds(10) && firstTraffic.Any(t => t is null))
            for (int edge = 0; edge < 3; edge++)
                if (firstTraffic[edge] is null && (await http.GetStringAsync(Fleet.EdgeUrl(edge) + "/api/x")).StartsWith("o2 ", StringComparison.Ordinal))
                    firstTraffic[edge] = put.Elapsed;
        output.WriteLine($"etcd put -> first request served by the new backend, per edge: {string.Join(", ", firstTraffic.Select(t => $"{t?.TotalMilliseconds:0} ms"))}");
        Assert.All(firstTraffic, t => Assert.True(t is not null, "the registration never reached an edge's traffic"));

        // :: A backend dies and its lease expires: no client request fails meanwhile (the default retry moves them).
        var shortLease = await fleet.GrantLeaseAsync(2); // nobody keeps it alive
        await fleet.PutAsync(ApiKey + "o3", $$"""{ "Address": "{{Fleet.OriginUrl(2)}}/" }""", shortLease);
        await Poll.UntilAsync(async () => (await http.GetStringAsync(Fleet.EdgeUrl(0) + "/api/x")).StartsWith("o3 ", StringComparison.Ordinal), "o3 to receive traffic");
        await fleet.KillOriginAsync(2);
        var expiry = Stopwatch.StartNew();
        var failures = new List<string>();
        int requests = 0;
        // Until etcd has deleted the key and every edge has dropped o3: then o3 is never picked again.
        await Poll.UntilAsync(async () =>
        {
            for (int edge = 0; edge < 3; edge++, requests++)
            {
                using var response = await http.GetAsync(Fleet.EdgeUrl(edge) + "/api/x");
                if (!response.IsSuccessStatusCode) failures.Add($"edge {edge + 1}: {(int)response.StatusCode}");
            }
            return expiry.Elapsed > TimeSpan.FromSeconds(4);
        }, "the lease to expire", TimeSpan.FromSeconds(30));
        for (int i = 0; i < 30; i++, requests++)
        {
            var body = await http.GetStringAsync(Fleet.EdgeUrl(i % 3) + "/api/x");
            Assert.False(body.StartsWith("o3 ", StringComparison.Ordinal));
        }
        output.WriteLine($"lease expiry: {requests} requests while o3 died and its lease ran out, {failures.Count} failed");
        Assert.Empty(failures);

        // :: etcd stops: traffic unaffected, the view marked stale; etcd back: current again, changes flow again.
        var lastGoodSet = await ApiDestinationsAsync(fleet, 0);
        await fleet.StopEtcdAsync();
        await Poll.UntilAsync(async () => !await fleet.EtcdCurrentAsync(0) && !await fleet.EtcdCurrentAsync(1) && !await fleet.EtcdCurrentAsync(2),
            "every edge to mark its etcd view stale");
        var seen = new HashSet<string>();
        for (int i = 0; i < 30; i++)
        {
            using var response = await http.GetAsync(Fleet.EdgeUrl(i % 3) + "/api/x");
            Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode} while etcd was down");
            seen.Add((await response.Content.ReadAsStringAsync())[..2]);
        }
        // The last good set stays in force: every answer from it, and the edge still lists it.
        Assert.Contains("o1", lastGoodSet);
        Assert.Subset(lastGoodSet.ToHashSet(), seen);
        Assert.Equal(lastGoodSet, await ApiDestinationsAsync(fleet, 0));
        Assert.Equal(1, await fleet.MetricAsync(0, "zcproxy_discovery_stale_since_seconds{source=\"etcd\"}") > 0 ? 1 : 0);
        await fleet.StartEtcdAsync();
        await Poll.UntilAsync(async () => await fleet.EtcdCurrentAsync(0) && await fleet.EtcdCurrentAsync(1) && await fleet.EtcdCurrentAsync(2),
            "every edge to be current again", TimeSpan.FromSeconds(30));
        Assert.Equal(0, await fleet.MetricAsync(0, "zcproxy_discovery_stale_since_seconds{source=\"etcd\"}"));
        await stopKeepAlive.CancelAsync();
        await keepAlive;
    }

    [NetnsFact]
    public async Task PeeredCache_OriginSeesEachObjectOncePerFleet_AndANodeLossRefetchesOnlyItsKeys()
    {
        const int Objects = 300;
        await using var fleet = await Fleet.StartAsync();

        // :: No peers registered yet: every edge fills from the origins itself.
        long before = await fleet.OriginRequestsAsync();
        await FetchAllAsync(fleet, "a", Objects, [0, 1, 2]);
        long withoutPeers = await fleet.OriginRequestsAsync() - before;

        // :: The edges register as peers (what each node's start script does with etcdctl): keys sharded by owner.
        for (int edge = 0; edge < 3; edge++)
            await fleet.PutAsync($"{Fleet.Prefix}peers/e{edge + 1}", $$"""{ "Address": "{{Fleet.EdgeUrl(edge)}}" }""");
        await Poll.UntilAsync(async () =>
        {
            for (int edge = 0; edge < 3; edge++)
            {
                using var status = System.Text.Json.JsonDocument.Parse(await fleet.Http.GetStringAsync(Fleet.AdminUrl(edge) + "/status"));
                if (status.RootElement.GetProperty("peers").GetProperty("nodes").GetArrayLength() != 3) return false;
            }
            return true;
        }, "every edge to see the peers", TimeSpan.FromSeconds(10));
        before = await fleet.OriginRequestsAsync();
        var clock = Stopwatch.StartNew();
        await FetchAllAsync(fleet, "b", Objects, [0, 1, 2]);
        long withPeers = await fleet.OriginRequestsAsync() - before;
        output.WriteLine($"{Objects} distinct objects through all three edges: {withoutPeers} origin requests without peers, {withPeers} with peers ({clock.ElapsedMilliseconds} ms for {3 * Objects} requests)");
        Assert.Equal(3 * Objects, withoutPeers);
        Assert.Equal(Objects, withPeers);

        // :: Edge 2 dies: the other two keep serving every object; only the keys it owned come from the origins again.
        var nodes = Enumerable.Range(0, 3).Select(Fleet.EdgeUrl).ToArray();
        int ownedByLost = Enumerable.Range(0, Objects).Count(i => PeerRing.Owner(Key("b", i), nodes, _ => true) == nodes[1]);
        await fleet.KillEdgeAsync(1);
        before = await fleet.OriginRequestsAsync();
        await FetchAllAsync(fleet, "b", Objects, [0, 2]);
        long refetched = await fleet.OriginRequestsAsync() - before;
        output.WriteLine($"edge 2 killed: {refetched} of {Objects} keys refetched ({100.0 * refetched / Objects:0.0} %; edge 2 owned {ownedByLost})");
        Assert.Equal(ownedByLost, refetched);
        Assert.True(refetched <= Objects / 3 * 1.1, $"{refetched} of {Objects} keys refetched");
        Assert.Equal(1, await fleet.MetricAsync(0, "zcproxy_cache_peer_requests_total{result=\"unreachable\"}"));
    }

    private static async Task<string[]> ApiDestinationsAsync(Fleet fleet, int edge)
    {
        using var status = System.Text.Json.JsonDocument.Parse(await fleet.Http.GetStringAsync(Fleet.AdminUrl(edge) + "/status"));
        return status.RootElement.GetProperty("clusters").EnumerateArray().Single(c => c.GetProperty("id").GetString() == "api")
            .GetProperty("destinations").EnumerateArray().Select(d => d.GetProperty("id").GetString()!).Order().ToArray();
    }

    /// <summary>The site's one name, as clients behind DNS or anycast send it to whichever edge they reach.</summary>
    private const string SiteName = "cdn.example";

    /// <summary>The cache key of /obj/{set}-{i} as every edge computes it ({scheme}://{host}{uri}).</summary>
    private static string Key(string set, int i) => $"http://{SiteName}/obj/{set}-{i}";

    /// <summary>Every object through each of the given edges in turn; each answer checked.</summary>
    private static async Task FetchAllAsync(Fleet fleet, string set, int objects, int[] edges)
    {
        foreach (var edge in edges)
            for (int i = 0; i < objects; i++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"{Fleet.EdgeUrl(edge)}/obj/{set}-{i}") { Headers = { Host = SiteName } };
                using var response = await fleet.Http.SendAsync(request);
                Assert.True(response.IsSuccessStatusCode, $"edge {edge + 1} /obj/{set}-{i}: {(int)response.StatusCode}");
                Assert.EndsWith($" object {set}-{i}", await response.Content.ReadAsStringAsync());
            }
    }
}
