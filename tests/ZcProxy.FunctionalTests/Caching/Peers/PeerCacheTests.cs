using System.Security.Cryptography;
using Xunit.Abstractions;
using ZcProxy.Core.Caching.Peers;
using ZcProxy.Tests.Balancing;

namespace ZcProxy.Tests.Caching.Peers;

/// <summary>Cache.Peers: one owner per key across the nodes, misses forwarded to it, a down owner skipped.</summary>
public class PeerCacheTests(ITestOutputHelper output)
{
    private const string Forwarded = "zcproxy_cache_peer_requests_total{result=\"forwarded\"}";
    private const string Unreachable = "zcproxy_cache_peer_requests_total{result=\"unreachable\"}";

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ObjectsFetchedThroughEveryNode_ReachTheOriginOncePerFleet(bool zeroCopy)
    {
        const int Objects = 60;
        await using var fleet = await PeerFleet.StartAsync(zeroCopy);
        for (int node = 0; node < 3; node++)
            for (int i = 0; i < Objects; i++)
            {
                using var response = await fleet.GetAsync(node, $"/obj/{i}");
                Assert.Equal(200, (int)response.StatusCode);
                Assert.Equal($"object {i}", await response.Content.ReadAsStringAsync());
                // The owner's status comes through: MISS for the first node to ask, HIT for the others.
                Assert.Equal(node == 0 ? "MISS" : "HIT", CacheRig.CacheStatusOf(response));
            }
        output.WriteLine($"{Objects} objects through 3 nodes: {fleet.Origin.Requests} origin requests");
        Assert.Equal(Objects, fleet.Origin.Requests);
        // No request reached the origin with the peer header: the owner removes it.
        Assert.DoesNotContain(fleet.Origin.Seen, s => s.Headers.ContainsKey(CachePeers.HeaderName));
        double forwarded = 0;
        for (int node = 0; node < 3; node++) forwarded += await fleet.MetricAsync(node, Forwarded);
        // Each node owns about a third of the keys; the other two thirds of its requests went to their owners.
        Assert.InRange(forwarded, 3 * Objects / 2, 3 * Objects - 1);
        for (int node = 0; node < 3; node++) PathAssert.ForwardedOn(fleet.Nodes[node]!, zeroCopy);
    }

    [Fact]
    public async Task WithoutPeers_EveryNodeFetchesEveryObject()
    {
        const int Objects = 20;
        await using var fleet = await PeerFleet.StartAsync(zeroCopy: true, peers: false);
        for (int node = 0; node < 3; node++)
            for (int i = 0; i < Objects; i++)
                (await fleet.GetAsync(node, $"/obj/{i}")).Dispose();
        Assert.Equal(3 * Objects, fleet.Origin.Requests); // the comparison the peered test is measured against
    }

    [Fact]
    public async Task OwnersAnswer_IsSplicedThroughTheAskingNode()
    {
        await using var fleet = await PeerFleet.StartAsync(zeroCopy: true);
        var expected = Convert.ToHexString(SHA256.HashData(CacheRig.RandomBody(PeerFleet.BigSize, 7)));
        using (var fill = await fleet.GetAsync(0, "/big/7")) Assert.Equal(200, (int)fill.StatusCode);
        // Through every node: the non-owners (their forwarded counter moves) pass the owner's hit on.
        for (int node = 0; node < 3; node++)
        {
            const string Splice = "zcproxy_body_bytes_total{mechanism=\"splice\",direction=\"response\"}";
            double forwardedBefore = await fleet.MetricAsync(node, Forwarded), splicedBefore = await fleet.MetricAsync(node, Splice);
            using var response = await fleet.GetAsync(node, "/big/7");
            Assert.Equal(expected, Convert.ToHexString(SHA256.HashData(await response.Content.ReadAsByteArrayAsync())));
            if (await fleet.MetricAsync(node, Forwarded) == forwardedBefore) continue; // the owner itself: a sendfile hit
            // A non-owner passed the owner's hit on: spliced owner socket -> pipe -> client socket (all but the bytes read with the head).
            double spliced = await fleet.MetricAsync(node, Splice) - splicedBefore;
            output.WriteLine($"node {node}: {spliced} of {PeerFleet.BigSize} body bytes spliced");
            Assert.InRange(spliced, PeerFleet.BigSize - 64 * 1024, PeerFleet.BigSize);
        }
        Assert.Equal(1, fleet.Origin.Requests);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task DownOwner_IsSkippedAfterOneFailedConnect(bool zeroCopy)
    {
        const int Objects = 60;
        // Three nodes listed, the third never started: its keys go elsewhere after one refused connect.
        await using var fleet = await PeerFleet.StartAsync(zeroCopy, nodes: 3, running: 2);
        for (int i = 0; i < Objects; i++)
        {
            using var response = await fleet.GetAsync(0, $"/obj/{i}");
            Assert.Equal(200, (int)response.StatusCode);
            Assert.Equal($"object {i}", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(1, await fleet.MetricAsync(0, Unreachable));
        Assert.Equal(Objects, fleet.Origin.Requests);
        // Node 1 agrees once it has found node 2 down too: nothing is fetched twice from the origin after that.
        for (int i = 0; i < Objects; i++) (await fleet.GetAsync(1, $"/obj/{i}")).Dispose();
        Assert.Equal(1, await fleet.MetricAsync(1, Unreachable));
        Assert.Equal(Objects, fleet.Origin.Requests);
    }

    [Fact]
    public async Task RequestFromAPeer_IsNeverForwardedAgain()
    {
        await using var fleet = await PeerFleet.StartAsync(zeroCopy: true);
        // Every node gets the header, so every node answers from the origin itself: no loop, no forward.
        for (int node = 0; node < 3; node++)
        {
            using var response = await fleet.GetAsync(node, "/obj/loop", r => r.Headers.Add(CachePeers.HeaderName, "http://elsewhere:1"));
            Assert.Equal(200, (int)response.StatusCode);
            Assert.Equal(0, await fleet.MetricAsync(node, Forwarded));
        }
        Assert.Equal(3, fleet.Origin.Requests);
        Assert.DoesNotContain(fleet.Origin.Seen, s => s.Headers.ContainsKey(CachePeers.HeaderName));
    }
}
