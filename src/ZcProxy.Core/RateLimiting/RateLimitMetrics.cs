using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.RateLimiting;

/// <summary>Refusals by the rate limits and by the per-client connection limit.</summary>
internal sealed class RateLimitMetrics(ProxyMetrics metrics)
{
    private readonly CounterFamily _rejections = metrics.Counters("zcproxy_rate_limit_rejections_total",
        "Requests refused by a rate-limit policy (RateLimits), by policy.", "policy");

    public Counter ConnectionRejections { get; } = metrics.Counter("zcproxy_connection_limit_rejections_total",
        "Client connections closed at accept because their address had Limits.MaxConnectionsPerClient open already.");

    public Counter Rejections(string policy) => _rejections.WithLabels(policy);

    /// <summary>zcproxy_rate_limit_waiting{policy}: requests in the queues of policies with a Queue, read at scrape time.</summary>
    public void ObserveWaiting(Func<IEnumerable<(string Policy, int Waiting)>> read)
        => metrics.Gauge("zcproxy_rate_limit_waiting", "Requests waiting in a rate-limit policy's queue (RateLimits.*.Queue), by policy.",
            ["policy"], () => read().Select(p => (new[] { p.Policy }, (double)p.Waiting)));
}
