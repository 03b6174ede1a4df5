using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Caching;

/// <summary>
/// A route's <c>"CacheIgnoreHeaders"</c> Metadata (nginx's <c>proxy_ignore_headers</c>): upstream response fields
/// that otherwise keep a response out of the cache. Only <c>Set-Cookie</c> today: by default a response that sets
/// a cookie is not stored (nginx's default too); a route naming it stores and serves such responses as RFC 9111
/// §3.1 allows, the cookie included, so every client served from the entry gets the cookie of the first response.
/// </summary>
internal static class CacheIgnoreHeaders
{
    public const string MetadataKey = "CacheIgnoreHeaders";
    public static readonly string[] Supported = ["Set-Cookie"];

    /// <summary>The cookie fields the option covers (Set-Cookie2 is RFC 2965's obsolete spelling of the same).</summary>
    public static readonly string[] CookieFields = ["Set-Cookie", "Set-Cookie2"];

    /// <summary>True when the request's route stores responses with Set-Cookie.</summary>
    public static bool StoresCookies(HttpContext context)
        => context.Features.Get<IReverseProxyFeature>()?.Route.Config.Metadata is { } metadata
           && metadata.TryGetValue(MetadataKey, out var value)
           && Names(value).Contains("Set-Cookie", StringComparer.OrdinalIgnoreCase);

    /// <summary>The field names of a value: separated by commas and/or spaces, as nginx lists them.</summary>
    public static string[] Names(string? value)
        => (value ?? "").Split([',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
}
