using System.Collections.Frozen;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.RateLimiting;

/// <summary>
/// The policies in force, by name (without case), swapped as a whole when a reload applies a configuration. A policy
/// whose settings did not change keeps its limiter (its counts survive the reload); a changed one starts afresh; a
/// removed one is disposed (requests still waiting in its queue are refused).
/// </summary>
internal sealed class RateLimitPolicies : IDisposable
{
    private readonly RateLimitMetrics _metrics;
    private readonly object _applyLock = new();
    private volatile FrozenDictionary<string, RateLimitPolicy> _byName = FrozenDictionary<string, RateLimitPolicy>.Empty;

    public RateLimitPolicies(RuntimeOptions runtime, RateLimitMetrics metrics)
    {
        _metrics = metrics;
        metrics.ObserveWaiting(() => _byName.Values.Select(p => (p.Name, p.Waiting)));
        Apply(runtime.Current.RateLimits);
        runtime.Changed += (_, next) => Apply(next.RateLimits);
    }

    /// <summary>True when no policy is configured: the request step then does nothing else.</summary>
    public bool IsEmpty => _byName.Count == 0;

    public RateLimitPolicy? Find(string name) => _byName.GetValueOrDefault(name);

    public void Apply(IReadOnlyDictionary<string, RateLimitOptions> configured)
    {
        lock (_applyLock)
        {
            var previous = _byName;
            var next = new Dictionary<string, RateLimitPolicy>(StringComparer.OrdinalIgnoreCase);
            foreach (var (name, options) in configured)
                next[name] = previous.TryGetValue(name, out var kept) && kept.Options == options
                    ? kept
                    : new RateLimitPolicy(name, options, _metrics.Rejections(name));
            _byName = next.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
            foreach (var old in previous.Values)
                if (!next.ContainsValue(old)) old.Dispose();
        }
    }

    public void Dispose()
    {
        lock (_applyLock)
        {
            foreach (var policy in _byName.Values) policy.Dispose();
            _byName = FrozenDictionary<string, RateLimitPolicy>.Empty;
        }
    }
}
