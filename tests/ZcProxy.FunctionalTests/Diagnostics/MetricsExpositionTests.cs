using ZcProxy.Tests.Balancing;

namespace ZcProxy.Tests.Diagnostics;

/// <summary>GET {Admin}/metrics as Prometheus reads it: parsed by a real parser, with the families operators look for.</summary>
public class MetricsExpositionTests
{
    private static readonly HttpClient Client = new();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Metrics_PassARealPrometheusParser_WithHistogramsProcessAndRuntimeFamilies(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/app/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", origin.Url))}} } }
            """, $$"""
            "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        const int requests = 5;
        for (int i = 0; i < requests; i++) (await Client.GetAsync(proxy.Url + "/app/x" + i)).EnsureSuccessStatusCode();
        Assert.Equal(404, (int)(await Client.GetAsync(proxy.Url + "/nowhere")).StatusCode);
        PathAssert.ForwardedOn(proxy, zeroCopy);

        // A request is counted once its response was sent (a completed callback), its upstream timings once the exchange
        // ended: the client may hold the last response an instant before. Wait (bounded) until the last ones are counted.
        Dictionary<string, PrometheusText.Family> families = [];
        await Poll.UntilAsync(async () =>
        {
            families = await PrometheusText.ParseAsync(await Client.GetStringAsync(proxy.AdminUrl + "/metrics"));
            return CountSoFar(families, "zcproxy_request_duration_seconds", "", "") >= 1
                && CountSoFar(families, "zcproxy_request_duration_seconds", "r", "a") >= requests
                && CountSoFar(families, "zcproxy_upstream_response_duration_seconds", "r", "a") >= requests;
        }, "every request counted");

        // The contract's families keep their names (the parser reports a counter family without its _total suffix).
        var body = families["zcproxy_body_bytes"];
        Assert.Equal("counter", body.Type);
        Assert.Equal(8, body.Samples.Count(s => s.Name == "zcproxy_body_bytes_total"));
        Assert.True(body.Samples.Single(s => s.Labels["mechanism"] == "copy" && s.Labels["direction"] == "response").Value > 0);
        Assert.Equal(requests, families["zcproxy_requests"].Samples.Single(s => s.Labels["code"] == "2xx").Value);
        Assert.Equal(1, families["zcproxy_requests"].Samples.Single(s => s.Labels["code"] == "4xx").Value);
        Assert.Equal("counter", families["zcproxy_upstream_retries"].Type);

        // Latency histograms by route and cluster: the request, and the upstream connect, head and total.
        Assert.Equal(requests, Count(families, "zcproxy_request_duration_seconds", "r", "a"));
        Assert.Equal(1, Count(families, "zcproxy_request_duration_seconds", "", ""));
        Assert.Equal(requests, Count(families, "zcproxy_upstream_header_duration_seconds", "r", "a"));
        Assert.Equal(requests, Count(families, "zcproxy_upstream_response_duration_seconds", "r", "a"));
        Assert.InRange(Count(families, "zcproxy_upstream_connect_duration_seconds", "r", "a"), 1, requests);

        // Process metrics under the standard names, the runtime's and Kestrel's meters.
        Assert.True(Value(families, "process_cpu_seconds", "counter") > 0);
        Assert.True(Value(families, "process_resident_memory_bytes", "gauge") > 1 << 20);
        Assert.True(Value(families, "process_open_fds", "gauge") > 3);
        Assert.True(Value(families, "process_max_fds", "gauge") >= Value(families, "process_open_fds", "gauge"));
        Assert.True(Value(families, "process_start_time_seconds", "gauge") > 1.6e9);
        Assert.True(Value(families, "zcproxy_client_connections", "gauge") >= 1);
        Assert.Contains(families.Keys, k => k.StartsWith("system_runtime_dotnet_gc", StringComparison.Ordinal));
        Assert.Contains("microsoft_aspnetcore_server_kestrel_kestrel_active_connections", families.Keys);
    }

    /// <summary>The _count samples summed, 0 while the family is not there yet (what the wait above needs).</summary>
    private static double CountSoFar(Dictionary<string, PrometheusText.Family> families, string histogram, string route, string cluster)
        => families.TryGetValue(histogram, out var f) ? f.Samples.Where(IsCount(histogram, route, cluster)).Sum(s => s.Value) : 0;

    private static double Count(Dictionary<string, PrometheusText.Family> families, string histogram, string route, string cluster)
    {
        Assert.Equal("histogram", families[histogram].Type);
        return families[histogram].Samples.Single(IsCount(histogram, route, cluster)).Value;
    }

    private static Func<PrometheusText.Sample, bool> IsCount(string histogram, string route, string cluster)
        => s => s.Name == histogram + "_count" && s.Labels.GetValueOrDefault("route") == route && s.Labels.GetValueOrDefault("cluster") == cluster;

    private static double Value(Dictionary<string, PrometheusText.Family> families, string family, string type)
    {
        Assert.True(families.TryGetValue(family, out var f), $"no family {family} in /metrics");
        Assert.Equal(type, f!.Type);
        return f.Samples.Single().Value;
    }
}
