using System.Collections.Concurrent;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Per-request metrics: <c>zcproxy_requests_total{code}</c> by status class, and latency histograms by route and
/// cluster: the whole request (<c>zcproxy_request_duration_seconds</c>) and the upstream exchange (connect, time to
/// the response head, total; nginx's $upstream_connect_time, $upstream_header_time, $upstream_response_time).
/// Histogram children are resolved once per (route, cluster), so observing costs no allocation.
/// </summary>
internal sealed class RequestMetrics
{
    private static readonly string[] Labels = ["route", "cluster"];
    private readonly Counter[] _byStatusClass;
    private readonly HistogramFamily _duration, _connect, _header, _response;
    private readonly ConcurrentDictionary<(string Route, string Cluster), RouteSeries> _series = new();

    public RequestMetrics(ProxyMetrics metrics)
    {
        var family = metrics.Counters("zcproxy_requests_total", "Requests answered, by status class.", "code");
        _byStatusClass = Enumerable.Range(1, 5).Select(c => family.WithLabels($"{c}xx")).ToArray();
        _duration = metrics.Histogram("zcproxy_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by route and cluster (route and cluster empty when no route matched).",
            LatencyBuckets.Seconds, Labels);
        _connect = metrics.Histogram("zcproxy_upstream_connect_duration_seconds",
            "Time to open a new upstream connection (reused keep-alive connections are not observed), by route and cluster.", LatencyBuckets.Seconds, Labels);
        _header = metrics.Histogram("zcproxy_upstream_header_duration_seconds",
            "Time from the first try to the upstream response head, by route and cluster (nginx $upstream_header_time).", LatencyBuckets.Seconds, Labels);
        _response = metrics.Histogram("zcproxy_upstream_response_duration_seconds",
            "Time from the first try to the end of the upstream response body, by route and cluster (nginx $upstream_response_time).", LatencyBuckets.Seconds, Labels);
    }

    public void CountStatus(int status)
    {
        if (status is >= 100 and < 600) _byStatusClass[status / 100 - 1].Increment();
    }

    /// <summary>The histogram series of one route and cluster ("" for none).</summary>
    /// <remarks>
    /// Asked twice per proxied request (upstream timing, request end) with the ids of the route's and cluster's
    /// config objects: the same two strings request after request, so the last answer is kept by reference and the
    /// table's hashing of both ids is skipped.
    /// </remarks>
    public RouteSeries For(string route, string cluster)
    {
        if (_last is { } last && ReferenceEquals(last.Route, route) && ReferenceEquals(last.Cluster, cluster)) return last.Series;
        var series = Lookup(route, cluster);
        _last = new LastSeries(route, cluster, series);
        return series;
    }

    private LastSeries? _last;

    private sealed record LastSeries(string Route, string Cluster, RouteSeries Series);

    private RouteSeries Lookup(string route, string cluster)
        => _series.GetOrAdd((route, cluster), static (k, self) => new RouteSeries(
            self._duration.WithLabels(k.Route, k.Cluster), self._connect.WithLabels(k.Route, k.Cluster),
            self._header.WithLabels(k.Route, k.Cluster), self._response.WithLabels(k.Route, k.Cluster)), this);
}

/// <summary>The latency histograms of one route and cluster.</summary>
internal sealed record RouteSeries(HistogramSeries Duration, HistogramSeries UpstreamConnect,
    HistogramSeries UpstreamHeader, HistogramSeries UpstreamResponse);
