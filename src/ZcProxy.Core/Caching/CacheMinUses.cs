using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Caching;

/// <summary>
/// A route's <c>"CacheMinUses"</c> Metadata (nginx's <c>proxy_cache_min_uses</c>, default 1): a response is stored only
/// on the Nth miss of its key, so objects asked for once do not take disk space and write bandwidth. Misses are counted
/// in memory per key (a bounded table: when it holds <see cref="MaxKeys"/> keys it starts over, which only delays some
/// stores); a key's count goes when it is stored.
/// </summary>
internal sealed class CacheMinUses
{
    public const string MetadataKey = "CacheMinUses";
    public const int MaxKeys = 100_000;
    private readonly ConcurrentDictionary<string, int> _misses = new(StringComparer.Ordinal);

    /// <summary>The route's minimum (1 when unset or invalid; check rejects invalid values).</summary>
    public static int ForRoute(HttpContext context)
        => context.Features.Get<IReverseProxyFeature>()?.Route.Config.Metadata?.TryGetValue(MetadataKey, out var text) == true
           && TryParse(text, out int n, out _) ? n : 1;

    /// <summary>Counts one miss of <paramref name="key"/>; true when it reached <paramref name="minUses"/> (then the count is dropped).</summary>
    public bool CountMiss(string key, int minUses)
    {
        if (minUses <= 1) return true;
        if (_misses.Count >= MaxKeys) _misses.Clear();
        int count = _misses.AddOrUpdate(key, 1, static (_, n) => n + 1);
        if (count < minUses) return false;
        _misses.TryRemove(key, out _);
        return true;
    }

    public static bool TryParse(string? text, out int minUses, out string error)
    {
        error = "";
        if (int.TryParse(text?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out minUses) && minUses is >= 1 and <= 1_000_000) return true;
        error = $"'{text}' must be a whole number from 1 to 1000000";
        return false;
    }
}
