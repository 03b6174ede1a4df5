using Yarp.ReverseProxy.Configuration;

namespace ZcProxy.Core.RateLimiting;

/// <summary>
/// A route names its policy in YARP's own field, RateLimiterPolicy. YARP would look the name up in ASP.NET Core's
/// RateLimiterOptions, which are fixed at start (no policy added by a reload could ever be found) and not where
/// ZcProxy's policies live, so the field is moved into the route's Metadata before YARP sees the route (its validator
/// and its snapshot); <see cref="RateLimitStep"/> reads it there. "Disable" means no limit, as in YARP.
/// </summary>
internal static class RouteRateLimits
{
    /// <summary>The Metadata key the policy name travels under (not one an operator would write).</summary>
    public const string MetadataKey = "zcproxy:RateLimiterPolicy";
    public const string Disable = "Disable";
    public const string Default = "Default";

    public static RouteConfig ForYarp(RouteConfig route)
    {
        if (route.RateLimiterPolicy is not { } name) return route;
        if (string.Equals(name, Disable, StringComparison.OrdinalIgnoreCase)) return route with { RateLimiterPolicy = null };
        var metadata = new Dictionary<string, string>(route.Metadata ?? new Dictionary<string, string>(), StringComparer.OrdinalIgnoreCase)
        {
            [MetadataKey] = name,
        };
        return route with { RateLimiterPolicy = null, Metadata = metadata };
    }

    public static IReadOnlyList<RouteConfig> ForYarp(IReadOnlyList<RouteConfig> routes)
        => routes.Any(r => r.RateLimiterPolicy is not null) ? routes.Select(ForYarp).ToList() : routes;
}
