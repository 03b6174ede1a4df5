using System.Text.Json;
using Yarp.ReverseProxy;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Discovery;
using ZcProxy.Core.Balancing;

using ZcProxy.Core.Caching.Peers;

namespace ZcProxy.Admin;

/// <summary>
/// The admin listener's endpoints: the status page (HTML), health, Prometheus metrics, status (JSON) (GET, open); cache purge and the runtime
/// API (behind <see cref="AdminGuard"/>, as is every endpoint with another method).
/// </summary>
internal static class AdminEndpoints
{
    public static void Map(IApplicationBuilder admin)
    {
        admin.UseMiddleware<AdminGuard>(); // first: no mutating endpoint runs without it
        admin.UseRouting();
        admin.UseEndpoints(e =>
        {
            e.MapStatusPage();
            e.MapGet("/healthz", () => Results.Text("ok\n"));
            e.MapGet("/metrics", async (HttpContext context, ProxyMetrics metrics) =>
            {
                context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                await metrics.WritePrometheusAsync(context.Response.Body, context.RequestAborted);
            });
            e.MapGet("/status", (HttpContext context, IProxyStateLookup state, FileConfigProvider config, DestinationRegistry pools, ProxyMetrics metrics,
                    DiscoveryStatus discovery) => Results.Json(StatusView.Of(state, config, pools, metrics, discovery,
                    context.RequestServices.GetService<CachePeers>()), Json));
            e.MapCachePurge("/cache");
            e.MapDestinationAdmin();
        });
    }

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
}
