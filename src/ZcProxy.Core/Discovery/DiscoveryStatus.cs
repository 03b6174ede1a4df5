using System.Collections.Concurrent;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Discovery;

/// <summary>
/// Whether each discovery source's view is current, and since when it is stale: the last good set stays in force
/// while a source is unreachable, and /status and the metrics say so.
/// </summary>
internal sealed class DiscoveryStatus
{
    private readonly ConcurrentDictionary<string, SourceState> _sources = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;

    public DiscoveryStatus(TimeProvider time, ProxyMetrics metrics)
    {
        _time = time;
        string[] label = ["source"];
        metrics.Gauge("zcproxy_discovery_up", "1 while the discovery source's view is current (connected and watching), 0 while it is stale.",
            label, () => Sources.Select(s => (new[] { s.Source }, s.Current ? 1.0 : 0.0)));
        metrics.Gauge("zcproxy_discovery_stale_since_seconds", "Unix time since which the source's view is stale (its last good set is still served); 0 while current.",
            label, () => Sources.Select(s => (new[] { s.Source }, s.StaleSince?.ToUnixTimeMilliseconds() / 1000.0 ?? 0)));
        metrics.Gauge("zcproxy_discovery_destinations", "Destinations the source announces (before validation).",
            label, () => Sources.Select(s => (new[] { s.Source }, (double)s.Destinations)));
    }

    public sealed record SourceState(string Source, string Target, bool Current, DateTimeOffset? StaleSince, string? LastError,
        DateTimeOffset? LastChange, int Destinations);

    public IEnumerable<SourceState> Sources => _sources.Values.OrderBy(s => s.Source, StringComparer.Ordinal);

    public SourceState? Get(string source) => _sources.GetValueOrDefault(source);

    /// <summary>A source that has not synced yet is stale from the start: the files' destinations are all there is.</summary>
    public void Register(string source, string target) =>
        _sources.TryAdd(source, new SourceState(source, target, false, _time.GetUtcNow(), "not synced yet", null, 0));

    public void MarkCurrent(string source, int destinations) =>
        _sources.AddOrUpdate(source, _ => throw new InvalidOperationException($"unregistered discovery source '{source}'"),
            (_, s) => s with { Current = true, StaleSince = null, LastError = null, LastChange = _time.GetUtcNow(), Destinations = destinations });

    /// <summary>Keeps the first moment of staleness across repeated failures.</summary>
    public void MarkStale(string source, string error) =>
        _sources.AddOrUpdate(source, _ => throw new InvalidOperationException($"unregistered discovery source '{source}'"),
            (_, s) => s with { Current = false, StaleSince = s.StaleSince ?? _time.GetUtcNow(), LastError = error });
}
