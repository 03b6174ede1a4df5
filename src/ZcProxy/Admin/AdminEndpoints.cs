using System.Text.Json;
using Yarp.ReverseProxy;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Admin;

/// <summary>
/// The admin listener's endpoints: health, Prometheus metrics, pool status (GET, open), cache purge (behind
/// <see cref="AdminGuard"/>, as is every endpoint with another method).
/// </summary>
internal static class AdminEndpoints
{
    public static void Map(IApplicationBuilder admin)
    {
        admin.UseMiddleware<AdminGuard>(); // first: no mutating endpoint runs without it
        admin.UseRouting();
        admin.UseEndpoints(e =>
        {
            e.MapGet("/healthz", () => Results.Text("ok\n"));
            e.MapGet("/metrics", async (HttpContext context, ProxyMetrics metrics) =>
            {
                context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                await metrics.WritePrometheusAsync(context.Response.Body, context.RequestAborted);
            });
            e.MapGet("/status", (IProxyStateLookup state, FileConfigProvider config, DestinationRegistry pools) =>
                Results.Text(JsonSerializer.Serialize(Status(state, config, pools), StatusJson), "application/json"));
            e.MapCachePurge("/cache");
        });
    }

    private static readonly JsonSerializerOptions StatusJson = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private static object Status(IProxyStateLookup state, FileConfigProvider config, DestinationRegistry pools) => new
    {
        config = new { file = config.MainFile, routes = config.Current.Routes.Count, clusters = config.Current.Clusters.Count },
        clusters = state.GetClusters().OrderBy(c => c.ClusterId, StringComparer.Ordinal).Select(c => new
        {
            id = c.ClusterId,
            loadBalancingPolicy = c.Model.Config.LoadBalancingPolicy ?? "PowerOfTwoChoices",
            destinations = c.Destinations.Values.OrderBy(d => d.DestinationId, StringComparer.Ordinal).Select(d => new
            {
                id = d.DestinationId,
                address = d.Model.Config.Address,
                health = new { active = d.Health.Active.ToString(), passive = d.Health.Passive.ToString() },
                activeRequests = pools.Get(c.ClusterId, d).ActiveRequests, // ZcProxy's count, the same on both forwarding paths
                pool = DestinationStatus.Describe(pools, c.ClusterId, d),
            }),
        }),
    };
}
