using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching.Peers;

/// <summary>
/// Three in-process proxies on 127.0.0.1 (ports chosen before they start, since each must know every node's URL),
/// with a cache-enabled route to one origin whose objects are cacheable: /obj/{n} answers "object n" (max-age 1h),
/// /big/{n} a 1 MiB body. Nodes not started (<see cref="StartAsync"/>'s running) are listed but down.
/// </summary>
internal sealed class PeerFleet : IAsyncDisposable
{
    public const int BigSize = 1 << 20;
    public const string SiteName = "cdn.example";

    private readonly List<ConfigDirectory> _dirs = [];
    private readonly ReservedPort[] _ports; // held while the fleet lives: a node down refuses, and no other test's server takes its port

    private PeerFleet(TestOrigin origin, ReservedPort[] ports)
    {
        Origin = origin;
        _ports = ports;
        NodeUrls = ports.Select(p => $"http://127.0.0.1:{p.Port}").ToArray();
    }

    public TestOrigin Origin { get; }
    public string[] NodeUrls { get; }
    public InProcessProxy?[] Nodes { get; private set; } = [];

    public static async Task<PeerFleet> StartAsync(bool zeroCopy, int nodes = 3, int running = 3, bool peers = true)
    {
        var origin = await TestOrigin.StartAsync("origin", app =>
        {
            app.MapGet("/obj/{n}", (HttpContext c, string n) =>
            {
                c.Response.Headers.CacheControl = "max-age=3600";
                return Results.Text($"object {n}");
            });
            app.MapGet("/big/{n}", (HttpContext c, int n) =>
            {
                c.Response.Headers.CacheControl = "max-age=3600";
                return Results.Bytes(CacheRig.RandomBody(BigSize, n), "application/octet-stream");
            });
        });
        var fleet = new PeerFleet(origin, Enumerable.Range(0, nodes).Select(_ => new ReservedPort()).ToArray());
        var urls = fleet.NodeUrls;
        var started = new InProcessProxy?[nodes];
        for (int i = 0; i < running; i++)
        {
            var dir = new ConfigDirectory();
            fleet._dirs.Add(dir);
            var peerSection = peers
                ? $$""", "Peers": { "Self": "{{urls[i]}}", "Nodes": [ {{string.Join(", ", urls.Select(u => $"\"{u}\""))}} ], "ConnectTimeout": "1s" }"""
                : "";
            dir.WriteAtomically(dir.MainFile, $$"""
                {
                  "Listen": [ { "Url": "{{urls[i]}}" } ],
                  "Admin": { "Url": "http://127.0.0.1:0" },
                  "AccessLog": { "Path": "off" },
                  "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} },
                  "Cache": { "Path": "cache", "MaxSize": "1GiB" {{peerSection}} },
                  "ReverseProxy": {
                    "Routes": { "cached": { "ClusterId": "o", "Match": { "Path": "/{**rest}" }, "Metadata": { "Cache": "on" } } },
                    "Clusters": { {{ConfigDirectory.Cluster("o", ("o1", origin.Url))}} }
                  }
                }
                """);
            started[i] = await InProcessProxy.StartAsync(dir.MainFile);
        }
        fleet.Nodes = started;
        return fleet;
    }

    public async Task<HttpResponseMessage> GetAsync(int node, string path, Action<HttpRequestMessage>? configure = null)
    {
        // One name for the whole fleet, as clients behind DNS or anycast use: the cache key ({scheme}://{host}{uri}) is then the same on every node.
        var request = new HttpRequestMessage(HttpMethod.Get, NodeUrls[node] + path) { Headers = { Host = SiteName } };
        configure?.Invoke(request);
        var response = await CacheRig.Client.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    public async Task<double> MetricAsync(int node, string nameWithLabels)
    {
        var text = await CacheRig.Client.GetStringAsync(Nodes[node]!.AdminUrl + "/metrics");
        var m = Regex.Match(text, "^" + Regex.Escape(nameWithLabels) + @" (\S+)$", RegexOptions.Multiline);
        return m.Success ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    public async Task StopNodeAsync(int node)
    {
        await Nodes[node]!.DisposeAsync();
        Nodes[node] = null;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes) if (node is not null) await node.DisposeAsync();
        foreach (var dir in _dirs) dir.Dispose();
        await Origin.DisposeAsync();
        foreach (var port in _ports) port.Dispose();
    }
}
