using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Balancing;

/// <summary>Per-destination pool gauges for GET {Admin}/metrics, read at scrape time.</summary>
internal static class DestinationMetrics
{
    public static void Register(ProxyMetrics metrics, DestinationRegistry pools)
    {
        Gauge(metrics, pools, "zcproxy_upstream_active_requests", "Requests in flight to the destination.", r => r.ActiveRequests);
        Gauge(metrics, pools, "zcproxy_upstream_queue_length", "Requests waiting for one of the destination's MaxConnections slots.", r => r.Slots.QueueLength);
        Gauge(metrics, pools, "zcproxy_upstream_weight", "The destination's weight in force: set by the runtime API, else configured.", r => r.Weight(r.Settings));
        Gauge(metrics, pools, "zcproxy_upstream_draining", "1 while an operator drains the destination (runtime API).", r => r.AdminState == DestinationAdminState.Draining ? 1 : 0);
        Gauge(metrics, pools, "zcproxy_upstream_disabled", "1 while an operator has disabled the destination (runtime API).", r => r.AdminState == DestinationAdminState.Disabled ? 1 : 0);
        Gauge(metrics, pools, "zcproxy_upstream_effective_weight", "The destination's weight after slow start.", r => r.EffectiveWeight(r.Settings));
        Gauge(metrics, pools, "zcproxy_upstream_failures", "Failed tries (errors, timeouts, FailOn statuses) since start.", r => r.Failures);
        Gauge(metrics, pools, "zcproxy_upstream_breaker_open", "1 while the destination's circuit breaker is open.", r => r.IsBroken ? 1 : 0);
        Gauge(metrics, pools, "zcproxy_upstream_healthy", "1 when the destination is healthy (active/passive checks and breaker).", r => r.Healthy && !r.IsBroken ? 1 : 0);
    }

    private static void Gauge(ProxyMetrics metrics, DestinationRegistry pools, string name, string help, Func<DestinationRuntime, double> read)
        => metrics.Gauge(name, help, ["cluster", "destination"], () => pools.All.Select(r => (new[] { r.ClusterId, r.DestinationId }, read(r))));
}
