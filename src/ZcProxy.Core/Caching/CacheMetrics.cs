using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Caching;

/// <summary>The cache's metrics: requests by X-Cache-Status, size and entry gauges, errors by kind, fill bytes by mechanism.</summary>
internal sealed class CacheMetrics
{
    private readonly Dictionary<string, Counter> _byStatus;

    public CacheMetrics(ProxyMetrics metrics, CacheIndex index, CacheLock cacheLock)
    {
        metrics.Gauge("zcproxy_cache_lock_waiting", "Requests waiting for another request's fill of the same key.", () => cacheLock.Waiting);
        Body = metrics;
        var requests = metrics.Counters("zcproxy_cache_requests_total", "Requests on cache-enabled routes, by cache status.", "status");
        _byStatus = CacheStatus.All.ToDictionary(s => s, s => requests.WithLabels(s));
        var errors = metrics.Counters("zcproxy_cache_errors_total", "Cache errors by kind.", "kind");
        FillErrors = errors.WithLabels("fill");
        CorruptEntries = errors.WithLabels("corrupt");
        var fillBytes = metrics.Counters("zcproxy_cache_fill_bytes_total",
            "Body bytes written into cache entries, by how they got there: splice (teed from the response's splice pipe in the kernel), directio (read from the tee into aligned buffers, written with O_DIRECT) or copy.", "mechanism");
        FillBytesSpliced = fillBytes.WithLabels("splice");
        FillBytesCopied = fillBytes.WithLabels("copy");
        FillBytesDirect = fillBytes.WithLabels("directio");
        metrics.Gauge("zcproxy_cache_size_bytes", "Bytes of cache entry files on disk.", () => index.Size);
        metrics.Gauge("zcproxy_cache_entries", "Cache entries on disk.", () => index.Count);
    }

    public ProxyMetrics Body { get; }
    public Counter FillErrors { get; }
    public Counter CorruptEntries { get; }
    public Counter FillBytesSpliced { get; }
    public Counter FillBytesCopied { get; }
    public Counter FillBytesDirect { get; }

    public void CountRequest(string status)
    {
        if (_byStatus.TryGetValue(status, out var c)) c.Increment();
    }
}

/// <summary>X-Cache-Status values (nginx's $upstream_cache_status).</summary>
internal static class CacheStatus
{
    public const string Hit = "HIT", Miss = "MISS", Expired = "EXPIRED", Stale = "STALE", Updating = "UPDATING",
        Revalidated = "REVALIDATED", Bypass = "BYPASS";
    public static readonly string[] All = [Hit, Miss, Expired, Stale, Updating, Revalidated, Bypass];
    public const string HeaderName = "X-Cache-Status";
}
