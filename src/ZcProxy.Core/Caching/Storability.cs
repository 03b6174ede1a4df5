using Microsoft.AspNetCore.Http;

namespace ZcProxy.Core.Caching;

/// <summary>RFC 9111 §3 (with §3.5 for Authorization): may a shared cache store this response to this request?</summary>
internal static class Storability
{
    /// <summary>Null when storable, else a short reason (logged at debug level, useful in tests).</summary>
    /// <param name="ignored">The route's CacheIgnoreHeaders (Set-Cookie, Cache-Control, Expires).</param>
    /// <param name="hasRouteDefault">The route's CacheValid gives this status a lifetime (nginx proxy_cache_valid).</param>
    public static string? WhyNot(HttpRequest request, int status, IHeaderDictionary responseHeaders, IReadOnlyCollection<int> statuses,
        IgnoredHeaders ignored = IgnoredHeaders.None, bool hasRouteDefault = false)
    {
        bool storesCookies = ignored.HasFlag(IgnoredHeaders.SetCookie);
        if (!HttpMethods.IsGet(request.Method)) return "only GET responses are stored";
        if (status is < 200 or 206 or 304 || (statuses.Count > 0 && !statuses.Contains(status))) return $"status {status} is not stored";
        var requestCc = CacheControl.Parse(request.Headers.CacheControl);
        var responseCc = CacheControl.ForResponse(responseHeaders, ignored);
        // §5.2.2.3: must-understand overrides no-store for status codes whose caching rules the cache implements.
        bool understood = responseCc.Has("must-understand") && (Freshness.HeuristicallyCacheable.Contains(status) || status is 302 or 307);
        if (requestCc.NoStore || (responseCc.NoStore && !understood)) return "no-store";
        // §5.2.2.7: a shared cache must not store a private response (qualified private only withholds the named fields).
        if (responseCc.Private) return "private";
        // §3.5: a response to a request with Authorization only with must-revalidate, public or s-maxage.
        if (request.Headers.ContainsKey("Authorization") && !responseCc.MustRevalidate && !responseCc.Public && !responseCc.Has("s-maxage"))
            return "request carried Authorization";
        // nginx's default: a response that sets a cookie is for one client, unless the route says otherwise or the
        // origin itself withholds the cookie from shared caches (private="Set-Cookie" or no-cache="Set-Cookie", §5.2.2).
        if (!storesCookies && SetsCookieForOneClient(responseHeaders, responseCc))
            return $"Set-Cookie (a route stores such responses with \"{CacheIgnoreHeaders.MetadataKey}\": \"Set-Cookie\")";
        if (responseHeaders.Vary.Any(v => v is not null && v.Split(',').Any(f => f.Trim() == "*"))) return "Vary: * never matches";
        if (responseHeaders.ContainsKey("Content-Range")) return "partial content";
        // §3: explicit freshness, public, or a heuristically cacheable status code (no-cache responses are stored, validated on use);
        // or a lifetime the operator configured for the status (§3 lets a cache extension allow it).
        bool explicitOrAllowed = hasRouteDefault || responseCc.Public || responseCc.Has("max-age") || responseCc.Has("s-maxage")
            || (responseHeaders.ContainsKey("Expires") && !responseCc.Targeted && !ignored.HasFlag(IgnoredHeaders.Expires)) || Freshness.HeuristicallyCacheable.Contains(status);
        return explicitOrAllowed ? null : "no explicit freshness and status is not heuristically cacheable";
    }

    private static bool SetsCookieForOneClient(IHeaderDictionary responseHeaders, CacheControl responseCc)
    {
        var withheld = responseCc.WithheldFields().ToHashSet(StringComparer.OrdinalIgnoreCase);
        return CacheIgnoreHeaders.CookieFields.Any(f => responseHeaders.ContainsKey(f) && !withheld.Contains(f));
    }
}
