using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Caching;

/// <summary>Upstream response fields a route tells the cache to disregard in its own decisions (they still reach clients).</summary>
[Flags]
internal enum IgnoredHeaders
{
    None = 0,
    /// <summary>Store responses that set cookies (with the cookie).</summary>
    SetCookie = 1,
    /// <summary>Cache-Control (and CDN-Cache-Control) do not decide storing, freshness or validation.</summary>
    CacheControl = 2,
    /// <summary>Expires does not decide freshness.</summary>
    Expires = 4,
}

/// <summary>
/// A route's <c>"CacheIgnoreHeaders"</c> Metadata (nginx's <c>proxy_ignore_headers</c>): upstream response fields the
/// cache disregards. <c>Set-Cookie</c>: by default a response that sets a cookie is not stored (nginx's default too); a
/// route naming it stores and serves such responses as RFC 9111 §3.1 allows, the cookie included, so every client served
/// from the entry gets the cookie of the first response. <c>Cache-Control</c> (with <c>CDN-Cache-Control</c>) and
/// <c>Expires</c>: their directives and dates no longer decide whether a response is stored, how long it is fresh or
/// whether it must be validated (the route's <see cref="CacheValid"/> and heuristics do); clients still receive them.
/// </summary>
internal static class CacheIgnoreHeaders
{
    public const string MetadataKey = "CacheIgnoreHeaders";
    public static readonly string[] Supported = ["Set-Cookie", "Cache-Control", "Expires"];

    /// <summary>The cookie fields the option covers (Set-Cookie2 is RFC 2965's obsolete spelling of the same).</summary>
    public static readonly string[] CookieFields = ["Set-Cookie", "Set-Cookie2"];

    private static readonly ConditionalWeakTable<RouteConfig, StrongBox<IgnoredHeaders>> ByRoute = [];

    /// <summary>What the request's route ignores (parsed once per route config).</summary>
    public static IgnoredHeaders ForRoute(HttpContext context)
        => context.Features.Get<IReverseProxyFeature>()?.Route.Config is { } route
            ? ByRoute.GetValue(route, static r => new(Parse(r.Metadata?.GetValueOrDefault(MetadataKey)))).Value
            : IgnoredHeaders.None;

    /// <summary>True when the request's route stores responses with Set-Cookie.</summary>
    public static bool StoresCookies(HttpContext context) => ForRoute(context).HasFlag(IgnoredHeaders.SetCookie);

    /// <summary>The flags a value names (unknown names are ignored here; check rejects them).</summary>
    public static IgnoredHeaders Parse(string? value)
    {
        var flags = IgnoredHeaders.None;
        foreach (var name in Names(value))
        {
            if (name.Equals("Set-Cookie", StringComparison.OrdinalIgnoreCase)) flags |= IgnoredHeaders.SetCookie;
            else if (name.Equals("Cache-Control", StringComparison.OrdinalIgnoreCase)) flags |= IgnoredHeaders.CacheControl;
            else if (name.Equals("Expires", StringComparison.OrdinalIgnoreCase)) flags |= IgnoredHeaders.Expires;
        }
        return flags;
    }

    /// <summary>The field names of a value: separated by commas and/or spaces, as nginx lists them.</summary>
    public static string[] Names(string? value)
        => (value ?? "").Split([',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
}
