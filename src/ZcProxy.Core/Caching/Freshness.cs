using System.Globalization;

namespace ZcProxy.Core.Caching;

/// <summary>RFC 9111 §4.2 for a shared cache: freshness lifetime, current age, and when a stale response may be served.</summary>
internal static class Freshness
{
    /// <summary>Status codes that are heuristically cacheable (RFC 9110 §15.1).</summary>
    public static readonly HashSet<int> HeuristicallyCacheable = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

    /// <summary>Upper bound for heuristic freshness (RFC 9111 §4.2.2 leaves the choice to the cache; nginx-like one day).</summary>
    public static readonly TimeSpan MaxHeuristic = TimeSpan.FromDays(1);

    /// <summary>
    /// §4.2.1: s-maxage, then max-age, then Expires − Date, then the route's default for the status
    /// (<paramref name="routeDefault"/>, from <see cref="CacheValid"/>), then a heuristic where allowed; else zero.
    /// </summary>
    /// <param name="ignored">What the route's CacheIgnoreHeaders takes out of the decision (Cache-Control, Expires).</param>
    public static TimeSpan Lifetime(StoredResponse r, TimeSpan? routeDefault = null, IgnoredHeaders ignored = IgnoredHeaders.None)
    {
        var cc = CacheControl.ForResponse(r, ignored);
        if (cc.Has("s-maxage")) return cc.SMaxAge ?? TimeSpan.Zero;
        if (cc.Has("max-age")) return cc.MaxAge ?? TimeSpan.Zero;
        var expiresText = cc.Targeted || ignored.HasFlag(IgnoredHeaders.Expires) ? null : r.Header("Expires");
        if (expiresText is not null)
        {
            // An invalid Expires (e.g. "0") means "already expired" (§5.3).
            var expires = HttpDate.Parse(expiresText);
            if (expires is null) return TimeSpan.Zero;
            var date = HttpDate.Parse(r.Header("Date")) ?? r.ResponseTime;
            var lifetime = expires.Value - date;
            return lifetime > TimeSpan.Zero ? lifetime : TimeSpan.Zero;
        }
        // The operator's default (nginx proxy_cache_valid) is the cache's own choice where the origin made none (§4.2.2).
        if (routeDefault is { } configured) return configured;
        // §4.2.2: heuristics only without explicit expiration, for heuristically cacheable codes or "public".
        if (!HeuristicallyCacheable.Contains(r.Status) && !cc.Public) return TimeSpan.Zero;
        var lastModified = HttpDate.Parse(r.Header("Last-Modified"));
        if (lastModified is null) return TimeSpan.Zero;
        var dateValue = HttpDate.Parse(r.Header("Date")) ?? r.ResponseTime;
        var sinceModified = dateValue - lastModified.Value;
        if (sinceModified <= TimeSpan.Zero) return TimeSpan.Zero;
        var heuristic = sinceModified / 10;
        return heuristic < MaxHeuristic ? heuristic : MaxHeuristic;
    }

    /// <summary>§4.2.3: corrected initial age plus resident time.</summary>
    public static TimeSpan CurrentAge(StoredResponse r, DateTimeOffset now) => CorrectedInitialAge(r) + ResidentTime(r, now);

    /// <summary>§4.2.3: the age the response had when it was received (a function of the stored head alone).</summary>
    public static TimeSpan CorrectedInitialAge(StoredResponse r)
    {
        var dateValue = HttpDate.Parse(r.Header("Date")) ?? r.ResponseTime;
        var apparentAge = Max(TimeSpan.Zero, r.ResponseTime - dateValue);
        var ageValue = TimeSpan.Zero;
        if (r.Header("Age") is { } ageText && long.TryParse(ageText.Split(',')[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var ageSeconds))
            ageValue = TimeSpan.FromSeconds(Math.Min(ageSeconds, int.MaxValue));
        var responseDelay = Max(TimeSpan.Zero, r.ResponseTime - r.RequestTime);
        var correctedAgeValue = ageValue + responseDelay;
        return Max(apparentAge, correctedAgeValue);
    }

    /// <summary>§4.2.3: how long the response has been in the cache.</summary>
    public static TimeSpan ResidentTime(StoredResponse r, DateTimeOffset now) => Max(TimeSpan.Zero, now - r.ResponseTime);

    /// <summary>The Age header value for a response served from the cache (whole seconds).</summary>
    public static string AgeHeader(TimeSpan age) => ((long)Math.Max(0, Math.Floor(age.TotalSeconds))).ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// §4.2.4 and §5.2.2.2/§5.2.2.8/§5.2.2.10: must-revalidate, proxy-revalidate and s-maxage forbid a shared cache to
    /// serve the response stale; so does no-cache (which forbids serving without validation at all).
    /// </summary>
    public static bool MayServeStale(CacheControl responseCc) =>
        !responseCc.MustRevalidate && !responseCc.ProxyRevalidate && !responseCc.Has("s-maxage") && !responseCc.NoCache;

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
}
