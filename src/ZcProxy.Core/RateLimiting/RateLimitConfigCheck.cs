using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.RateLimiting;

/// <summary>`check` and every reload: the RateLimits section, and that each route's RateLimiterPolicy names one of its policies.</summary>
internal sealed class RateLimitConfigCheck : IConfigCheck
{
    public IEnumerable<ConfigError> Check(LoadedConfig config)
    {
        var main = config.Files[0];
        var names = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, policy) in config.Options.RateLimits)
        {
            var at = $"$.RateLimits.{name}";
            if (policy is null)
            {
                yield return new(main, at, "must be an object such as { \"Kind\": \"TokenBucket\", \"Key\": \"ClientIp\", \"Limit\": 10, \"Per\": \"1s\" }");
                continue;
            }
            if (names.TryGetValue(name, out var first)) yield return new(main, at, $"the name differs from '{first}' only in case; policy names are compared without case");
            else names[name] = name;
            if (string.Equals(name, RouteRateLimits.Default, StringComparison.OrdinalIgnoreCase) || string.Equals(name, RouteRateLimits.Disable, StringComparison.OrdinalIgnoreCase))
                yield return new(main, at, $"'{name}' is a reserved RateLimiterPolicy value (YARP's); choose another name");
            foreach (var error in CheckPolicy(policy)) yield return new(main, at + error.Path, error.Message);
        }

        foreach (var route in config.Routes)
        {
            if (route.RateLimiterPolicy is not { } policyName) continue;
            var at = config.RouteSources[route.RouteId];
            if (string.Equals(policyName, RouteRateLimits.Disable, StringComparison.OrdinalIgnoreCase)) continue;
            if (string.Equals(policyName, RouteRateLimits.Default, StringComparison.OrdinalIgnoreCase))
                yield return new(at.File, at.JsonPath + ".RateLimiterPolicy", "ZcProxy has no default rate-limit policy: name one of the main file's RateLimits (or \"Disable\")");
            else if (!names.ContainsKey(policyName) && !config.Options.RateLimits.Keys.Contains(policyName, StringComparer.OrdinalIgnoreCase))
                yield return new(at.File, at.JsonPath + ".RateLimiterPolicy", $"rate-limit policy '{policyName}' is not defined in the main file's RateLimits");
        }

        if (config.Options.Limits.MaxConnectionsPerClient < 0)
            yield return new(main, "$.Limits.MaxConnectionsPerClient", "must not be negative (0 means unlimited)");
    }

    private static IEnumerable<(string Path, string Message)> CheckPolicy(RateLimitOptions policy)
    {
        bool concurrency = RateLimitKinds.IsConcurrency(policy.Kind);
        if (!RateLimitKinds.IsKnown(policy.Kind))
            yield return (".Kind", $"'{policy.Kind}' is not a kind: use \"TokenBucket\", \"FixedWindow\", \"SlidingWindow\" or \"Concurrency\"");
        if (RateLimitKey.Parse(policy.Key, out var keyError) is null) yield return (".Key", keyError);
        if (policy.Limit < 1) yield return (".Limit", "must be at least 1");
        if (!concurrency && policy.Per <= TimeSpan.Zero) yield return (".Per", "must be a duration above zero, such as \"1s\" or \"1m\"");
        else if (!concurrency && !RateLimitKinds.IsSlidingWindow(policy.Kind) && policy.Per < RateLimitPolicy.ReplenishTick)
            yield return (".Per", "must be at least 100ms, the limiters' replenishment tick (for 10 requests per 10ms write Limit 100, Per \"100ms\")");
        else if (RateLimitKinds.IsSlidingWindow(policy.Kind) && policy.Segments >= 1 && policy.Per / policy.Segments < RateLimitPolicy.ReplenishTick)
            yield return (".Segments", "Per / Segments must be at least 100ms, the limiters' replenishment tick: use fewer segments or a longer Per");
        if (policy.Burst < 0) yield return (".Burst", "must not be negative");
        else if (policy.Burst > 0 && !RateLimitKinds.IsTokenBucket(policy.Kind)) yield return (".Burst", "only a TokenBucket has a burst (windows count Limit per Per)");
        if ((long)policy.Limit + policy.Burst > int.MaxValue) yield return (".Burst", "Limit + Burst is too large");
        if (policy.Queue < 0) yield return (".Queue", "must not be negative");
        if (RateLimitKinds.IsSlidingWindow(policy.Kind) && policy.Segments < 1) yield return (".Segments", "must be at least 1");
        if (policy.Status is < 400 or > 599) yield return (".Status", "must be a 4xx or 5xx status (nginx's limit_req_status)");
    }
}
