using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Fleet;

/// <summary>
/// The lab's hosts: etcd (10.77.0.2), origins o1..o3 (10.77.0.11-13:8080, <see cref="FleetScripts.Origin"/>), edge
/// nodes e1..e3 (10.77.0.21-23: proxy :8080, admin :9901) running the real zcproxy executable, and the test's client
/// namespace (10.77.0.100) relaying to all of them. Every edge has a route /api/ to cluster "api" (o1 in the file,
/// more from etcd) and a cached route /obj/ to cluster "objects" (o1..o3), and Cache.Peers with its list from etcd.
/// </summary>
internal sealed class Fleet : IAsyncDisposable
{
    public const string Prefix = "/zcproxy/";
    public static readonly string[] Origins = ["10.77.0.11", "10.77.0.12", "10.77.0.13"];
    public static readonly string[] Edges = ["10.77.0.21", "10.77.0.22", "10.77.0.23"];
    private const string EtcdAddress = "10.77.0.2";

    private readonly NetnsLab _lab;
    private readonly Dictionary<string, string> _nsOf = [];
    private readonly Dictionary<string, Process> _origins = [];
    private readonly ProxyProcess?[] _edges = new ProxyProcess?[3];
    private Process? _etcd;

    private Fleet(NetnsLab lab)
    {
        _lab = lab;
        Http = lab.CreateHttpClient();
    }

    public HttpClient Http { get; }
    public static string EdgeUrl(int i) => $"http://{Edges[i]}:8080";
    public static string AdminUrl(int i) => $"http://{Edges[i]}:9901";
    public static string OriginUrl(int i) => $"http://{Origins[i]}:8080";
    private static string EtcdUrl => $"http://{EtcdAddress}:2379";

    public static async Task<Fleet> StartAsync()
    {
        var lab = await NetnsLab.CreateAsync();
        var fleet = new Fleet(lab);
        try
        {
            await fleet.BuildAsync();
        }
        catch
        {
            await fleet.DisposeAsync();
            throw;
        }
        return fleet;
    }

    private async Task BuildAsync()
    {
        _nsOf["etcd"] = await _lab.AddHostAsync("etcd", 2);
        for (int i = 0; i < 3; i++) _nsOf[Origins[i]] = await _lab.AddHostAsync($"o{i + 1}", 11 + i);
        for (int i = 0; i < 3; i++) _nsOf[Edges[i]] = await _lab.AddHostAsync($"e{i + 1}", 21 + i);
        var client = await _lab.AddHostAsync("client", 100);
        var relayed = new List<string> { $"{EtcdAddress}:2379" };
        relayed.AddRange(Origins.Select(o => $"{o}:8080"));
        relayed.AddRange(Edges.SelectMany(e => new[] { $"{e}:8080", $"{e}:9901" }));
        await _lab.RelayAsync(client, [.. relayed]);

        await StartEtcdAsync();
        var originScript = _lab.WriteFile("origin.py", FleetScripts.Origin);
        for (int i = 0; i < 3; i++) StartOrigin(i, originScript);
        for (int i = 0; i < 3; i++) StartEdge(i);
        await Poll.UntilAsync(async () =>
        {
            for (int i = 0; i < 3; i++)
            {
                if (!await AnswersAsync(OriginUrl(i) + "/__count")) return false;
                if (!await AnswersAsync(AdminUrl(i) + "/healthz")) return false;
                if (!await EtcdCurrentAsync(i)) return false;
            }
            return true;
        }, "origins up, edges up and synced with etcd", TimeSpan.FromSeconds(90));
    }

    private void StartOrigin(int i, string script) =>
        _origins[Origins[i]] = _lab.Start(_nsOf[Origins[i]], "python3", script, $"o{i + 1}", Origins[i], "8080");

    private void StartEdge(int i)
    {
        var main = _lab.WriteFile($"e{i + 1}.json", $$"""
            {
              "Listen": [ { "Url": "{{EdgeUrl(i)}}" } ],
              "Admin": { "Url": "{{AdminUrl(i)}}" },
              "AccessLog": { "Path": "off" },
              "Cache": { "Path": "cache-e{{i + 1}}", "MaxSize": "1GiB", "Peers": { "Self": "{{EdgeUrl(i)}}", "ConnectTimeout": "1s", "FailTimeout": "30s" } },
              "Discovery": { "Etcd": { "Endpoints": [ "{{EtcdUrl}}" ], "Prefix": "{{Prefix}}", "ProbeInterval": "500ms", "RequestTimeout": "1s", "MaxBackoff": "500ms" } },
              "ReverseProxy": {
                "Routes": {
                  "api": { "ClusterId": "api", "Match": { "Path": "/api/{**rest}" } },
                  "objects": { "ClusterId": "objects", "Match": { "Path": "/obj/{**rest}" }, "Metadata": { "Cache": "on" } }
                },
                "Clusters": {
                  "api": { "LoadBalancingPolicy": "RoundRobin", "Destinations": { "o1": { "Address": "{{OriginUrl(0)}}/" } } },
                  "objects": { "LoadBalancingPolicy": "RoundRobin", "Destinations": {
                    "o1": { "Address": "{{OriginUrl(0)}}/" }, "o2": { "Address": "{{OriginUrl(1)}}/" }, "o3": { "Address": "{{OriginUrl(2)}}/" } } }
                }
              }
            }
            """);
        _edges[i] = ProxyProcess.Start(["--config", main], launcher: ["ip", "netns", "exec", _nsOf[Edges[i]]]);
    }

    public async Task StartEtcdAsync()
    {
        var data = Path.Combine(_lab.Directory, "etcd-data");
        _etcd = _lab.Start(_nsOf["etcd"], "etcd", "--name", "lab", "--data-dir", data,
            "--listen-client-urls", EtcdUrl, "--advertise-client-urls", EtcdUrl,
            "--listen-peer-urls", $"http://{EtcdAddress}:2380", "--initial-advertise-peer-urls", $"http://{EtcdAddress}:2380",
            "--initial-cluster", $"lab=http://{EtcdAddress}:2380", "--log-level", "error");
        await Poll.UntilAsync(() => AnswersAsync(EtcdUrl + "/health"), "etcd to answer /health", TimeSpan.FromSeconds(30));
    }

    /// <summary>etcd ends as in a crash (SIGKILL).</summary>
    public Task StopEtcdAsync() => NetnsLab.KillAsync(_etcd!);

    public Task KillOriginAsync(int i) => NetnsLab.KillAsync(_origins[Origins[i]]);

    /// <summary>An edge node dies (SIGKILL): no goodbye to anyone.</summary>
    public Task KillEdgeAsync(int i)
    {
        _edges[i]!.Dispose();
        _edges[i] = null;
        return Task.CompletedTask;
    }

    public string EdgeOutput(int i) => _edges[i]?.Output ?? "";

    public async Task<long> OriginRequestsAsync()
    {
        long total = 0;
        for (int i = 0; i < 3; i++)
            if (_origins[Origins[i]] is { HasExited: false }) total += long.Parse(await Http.GetStringAsync(OriginUrl(i) + "/__count"));
        return total;
    }

    /// <summary>The edge's view of etcd from GET /status: current (true) or stale (false).</summary>
    public async Task<bool> EtcdCurrentAsync(int edge)
    {
        try
        {
            using var doc = JsonDocument.Parse(await Http.GetStringAsync(AdminUrl(edge) + "/status"));
            return doc.RootElement.GetProperty("discovery").EnumerateArray()
                .Any(s => s.GetProperty("source").GetString() == "etcd" && s.GetProperty("current").GetBoolean());
        }
        catch (HttpRequestException) { return false; }
    }

    public async Task<double> MetricAsync(int edge, string nameWithLabels)
    {
        var text = await Http.GetStringAsync(AdminUrl(edge) + "/metrics");
        var m = System.Text.RegularExpressions.Regex.Match(text, "^" + System.Text.RegularExpressions.Regex.Escape(nameWithLabels) + @" (\S+)$",
            System.Text.RegularExpressions.RegexOptions.Multiline);
        return m.Success ? double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    // :: etcd, through its JSON gateway, as a backend or an operator would write it.

    public async Task<long> GrantLeaseAsync(int ttlSeconds)
    {
        using var doc = await EtcdPostAsync("/v3/lease/grant", new { TTL = ttlSeconds });
        return long.Parse(doc.RootElement.GetProperty("ID").GetString()!);
    }

    public async Task PutAsync(string key, string value, long lease = 0) =>
        (await EtcdPostAsync("/v3/kv/put", new { key = B64(key), value = B64(value), lease = Id(lease) })).Dispose();

    /// <summary>int64 as proto3's JSON mapping writes it, a string: as a JSON number etcd's gateway may round it (IDs exceed 2^53).</summary>
    private static string Id(long id) => id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>What `etcdctl lease keep-alive` does for a running backend: renews the lease every second until cancelled.</summary>
    public async Task KeepAliveAsync(long lease, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try { (await EtcdPostAsync("/v3/lease/keepalive", new { ID = Id(lease) })).Dispose(); }
            catch (HttpRequestException) { } // etcd down: the backend keeps trying
            try { await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken); } catch (OperationCanceledException) { return; }
        }
    }

    private async Task<JsonDocument> EtcdPostAsync(string path, object body)
    {
        using var response = await Http.PostAsJsonAsync(EtcdUrl + path, body);
        response.EnsureSuccessStatusCode();
        return await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync());
    }

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    private async Task<bool> AnswersAsync(string url)
    {
        try
        {
            using var response = await Http.GetAsync(url);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException) { return false; }
        catch (TaskCanceledException) { return false; }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        foreach (var edge in _edges) edge?.Dispose();
        await _lab.DisposeAsync();
    }
}
