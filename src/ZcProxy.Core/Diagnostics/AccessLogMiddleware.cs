using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Where every proxied request ends: counts it (zcproxy_requests_total by status class, the request-duration
/// histogram by route and cluster) and hands it to the access log, unless the log is off or the route says
/// <c>"Metadata": { "AccessLog": "off" }</c> (nginx's <c>access_log off;</c> in a location).
/// </summary>
internal sealed class AccessLogMiddleware(RequestDelegate next, AccessLogWriter writer, RequestMetrics metrics)
{
    /// <summary>The route Metadata key that turns the access log off for a route ("off"; "on" is the default).</summary>
    public const string RouteMetadataKey = "AccessLog";

    public async Task InvokeAsync(HttpContext context)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            await next(context);
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(start);
            metrics.CountStatus(context.Response.StatusCode);
            var proxy = context.Find<IReverseProxyFeature>();
            metrics.For(proxy?.Route.Config.RouteId ?? "", proxy?.Cluster?.Config.ClusterId ?? "").Duration.Observe(elapsed.TotalSeconds);
            if (writer.Enabled && !RouteTurnsLogOff(proxy)) writer.Write(context, elapsed);
        }
    }

    private static bool RouteTurnsLogOff(IReverseProxyFeature? proxy)
        => proxy?.Route.Config.Metadata is { } metadata && metadata.TryGetValue(RouteMetadataKey, out var value)
            && string.Equals(value, "off", StringComparison.OrdinalIgnoreCase);
}
