using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Local;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// Semantic validation of a loaded configuration: the main file's own sections (<see cref="OptionsCheck"/>), YARP's
/// own validator for every route and cluster, ZcProxy's cross-file rules, and every registered <see cref="IConfigCheck"/>.
/// </summary>
internal sealed class ConfigValidator(IConfigValidator yarpValidator, IEnumerable<IConfigCheck> checks)
{
    /// <summary>
    /// What `check`, the start and every reload run: read the main file and its includes, validate, and report every
    /// problem at once. The config comes back only when there is none. Never throws: a defect in reading or validating
    /// is one more error line, not a stack trace (nor, on reload, a systemd left at RELOADING=1).
    /// </summary>
    public async Task<(LoadedConfig? Config, List<ConfigError> Errors)> LoadAndValidateAsync(string mainFile)
    {
        var errors = new List<ConfigError>();
        try
        {
            var config = ConfigFileLoader.Read(mainFile, errors);
            if (config is not null) errors.AddRange(await ValidateAsync(config));
            return (errors.Count == 0 ? config : null, errors);
        }
#pragma warning disable CA1031 // any defect becomes an error line: a broken edit must never take the proxy (or check) down
        catch (Exception e)
#pragma warning restore CA1031
        {
            errors.Add(new(Path.GetFullPath(mainFile), "$", $"internal error while reading the configuration ({e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")})"));
            return (null, errors);
        }
    }

    public async Task<List<ConfigError>> ValidateAsync(LoadedConfig config)
    {
        var errors = new List<ConfigError>();
        var main = config.Files[0];
        OptionsCheck.Check(config.Options, main, errors);

        foreach (var route in config.Routes)
        {
            var at = config.RouteSources[route.RouteId];
            if (LocalRoute.IsLocal(route))
            {
                if (!string.IsNullOrEmpty(route.ClusterId))
                    errors.Add(new(at.File, at.JsonPath + ".ClusterId", $"a route with Metadata '{LocalRoute.KeysText}' answers by itself: remove either the ClusterId or that Metadata"));
            }
            else if (string.IsNullOrEmpty(route.ClusterId))
                errors.Add(new(at.File, at.JsonPath + ".ClusterId", $"is required (or Metadata '{LocalRoute.KeysText}' for a route ZcProxy answers by itself)"));
            else if (!config.ClusterSources.ContainsKey(route.ClusterId)) // a cluster that could not be read is still defined
                errors.Add(new(at.File, at.JsonPath + ".ClusterId", $"cluster '{route.ClusterId}' is not defined in any configuration file"));
            if (route.Metadata?.TryGetValue("Cache", out var cache) == true)
            {
                if (!IsOn(cache) && !IsOff(cache))
                    errors.Add(new(at.File, at.JsonPath + ".Metadata.Cache", $"'{cache}' is neither \"on\" nor \"off\""));
                else if (IsOn(cache) && config.Options.Cache is null && !config.UnreadSections.Contains("Cache"))
                    errors.Add(new(at.File, at.JsonPath + ".Metadata.Cache", "caching is on for this route but the main file has no 'Cache' section"));
            }
            CheckTransforms(route, at, errors);
            foreach (var e in await yarpValidator.ValidateRouteAsync(route))
                errors.Add(new(at.File, at.JsonPath, e.Message));
        }

        // Clusters named by Streams hold tcp:// destinations; the stream check validates those.
        var streamClusters = StreamClusters.Named(config.Options);
        foreach (var cluster in config.Clusters)
        {
            var at = config.ClusterSources[cluster.ClusterId];
            bool streamCluster = streamClusters.Contains(cluster.ClusterId);
            foreach (var (name, destination) in cluster.Destinations ?? new Dictionary<string, DestinationConfig>())
            {
                if (destination is null)
                    errors.Add(new(at.File, $"{at.JsonPath}.Destinations.{name}", "must be an object with an \"Address\""));
                else if (!streamCluster && (!Uri.TryCreate(destination.Address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || string.IsNullOrEmpty(uri.Host)))
                    errors.Add(new(at.File, $"{at.JsonPath}.Destinations.{name}.Address", uri?.Scheme == "tcp"
                        ? $"'{destination.Address}' is a TCP destination: only clusters named by a 'Streams' entry may use tcp:// (an HTTP cluster needs http:// or https://)"
                        : $"'{destination.Address}' is not an absolute http:// or https:// URL"));
            }
            foreach (var e in await yarpValidator.ValidateClusterAsync(cluster))
                errors.Add(new(at.File, at.JsonPath, e.Message));
            CheckClusterTimers(cluster, at, errors);
        }

        foreach (var check in checks)
            errors.AddRange(check.Check(config));
        return errors;
    }

    public static bool IsOn(string? value) => value is not null &&
        (value.Equals("on", StringComparison.OrdinalIgnoreCase) || value.Equals("true", StringComparison.OrdinalIgnoreCase));

    public static bool IsOff(string? value) => value is not null &&
        (value.Equals("off", StringComparison.OrdinalIgnoreCase) || value.Equals("false", StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// A transform value with CR, LF or NUL cannot become a header field (RFC 9110 5.5) or a clean path or query: YARP
    /// accepts it, and the request then loses the header silently. Rejected here, where the operator sees it.
    /// </summary>
    private static void CheckTransforms(RouteConfig route, ConfigSource at, List<ConfigError> errors)
    {
        if (route.Transforms is not { } transforms) return;
        for (int i = 0; i < transforms.Count; i++)
            foreach (var (key, value) in transforms[i] ?? new Dictionary<string, string>())
                if (key.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0 || value?.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
                    errors.Add(new(at.File, $"{at.JsonPath}.Transforms[{i}].{key.ReplaceLineEndings(" ")}", "must not contain CR, LF or NUL characters"));
    }

    /// <summary>
    /// YARP's own timers (probes, reactivation, the forwarders' activity timeout) take at most <see cref="Duration.MaxTimeout"/>;
    /// YARP's validator already wants them above zero.
    /// </summary>
    private static void CheckClusterTimers(ClusterConfig cluster, ConfigSource at, List<ConfigError> errors)
    {
        void Check(TimeSpan? value, string path)
        {
            if (value > Duration.MaxTimeout) errors.Add(new(at.File, $"{at.JsonPath}.{path}", $"must be at most {Duration.MaxTimeoutText}"));
        }
        Check(cluster.HttpRequest?.ActivityTimeout, "HttpRequest.ActivityTimeout");
        Check(cluster.HealthCheck?.Active?.Interval, "HealthCheck.Active.Interval");
        Check(cluster.HealthCheck?.Active?.Timeout, "HealthCheck.Active.Timeout");
        Check(cluster.HealthCheck?.Passive?.ReactivationPeriod, "HealthCheck.Passive.ReactivationPeriod");
    }
}
