namespace ZcProxy.Core.Caching;

/// <summary>
/// What RFC 9111 §4.2 derives from a stored head under one route's settings: its Cache-Control directives, its freshness
/// lifetime and its corrected initial age. All are functions of the head alone, so a kept-open entry file
/// (<see cref="EntryFileHandle"/>) computes them once instead of parsing Cache-Control and dates on every hit.
/// </summary>
internal sealed class StoredFreshness
{
    private StoredFreshness(StoredResponse response, IgnoredHeaders ignored, TimeSpan? routeDefault)
    {
        Response = response;
        Ignored = ignored;
        RouteDefault = routeDefault;
        Directives = CacheControl.ForResponse(response, ignored);
        Lifetime = Freshness.Lifetime(response, routeDefault, ignored);
        InitialAge = Freshness.CorrectedInitialAge(response);
    }

    public StoredResponse Response { get; }
    public IgnoredHeaders Ignored { get; }
    public TimeSpan? RouteDefault { get; }
    public CacheControl Directives { get; }
    public TimeSpan Lifetime { get; }
    public TimeSpan InitialAge { get; }

    /// <summary>§4.2.3's current age at <paramref name="now"/>.</summary>
    public TimeSpan AgeAt(DateTimeOffset now) => InitialAge + Freshness.ResidentTime(Response, now);

    /// <summary><paramref name="known"/> when it was made for the same head and settings, else computed afresh.</summary>
    public static StoredFreshness Of(StoredResponse response, IgnoredHeaders ignored, TimeSpan? routeDefault, StoredFreshness? known = null)
        => known is not null && ReferenceEquals(known.Response, response) && known.Ignored == ignored && known.RouteDefault == routeDefault
            ? known
            : new StoredFreshness(response, ignored, routeDefault);
}
