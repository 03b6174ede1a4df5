using Yarp.ReverseProxy.Configuration;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// Semantic validation of a loaded configuration: YARP's own validator for every route and cluster,
/// ZcProxy's cross-file rules, and every registered <see cref="IConfigCheck"/>.
/// </summary>
internal sealed class ConfigValidator(IConfigValidator yarpValidator, IEnumerable<IConfigCheck> checks)
{
    public async Task<List<ConfigError>> ValidateAsync(LoadedConfig config)
    {
        var errors = new List<ConfigError>();
        var main = config.Files[0];
        CheckListeners(config.Options, main, errors);

        var clusterIds = new HashSet<string>(config.Clusters.Select(c => c.ClusterId), StringComparer.OrdinalIgnoreCase);
        foreach (var route in config.Routes)
        {
            var at = config.RouteSources[route.RouteId];
            if (string.IsNullOrEmpty(route.ClusterId))
                errors.Add(new(at.File, at.JsonPath + ".ClusterId", "is required"));
            else if (!clusterIds.Contains(route.ClusterId))
                errors.Add(new(at.File, at.JsonPath + ".ClusterId", $"cluster '{route.ClusterId}' is not defined in any configuration file"));
            if (route.Metadata?.TryGetValue("Cache", out var cache) == true && IsOn(cache) && config.Options.Cache is null)
                errors.Add(new(at.File, at.JsonPath + ".Metadata.Cache", "caching is on for this route but the main file has no 'Cache' section"));
            foreach (var e in await yarpValidator.ValidateRouteAsync(route))
                errors.Add(new(at.File, at.JsonPath, e.Message));
        }

        foreach (var cluster in config.Clusters)
        {
            var at = config.ClusterSources[cluster.ClusterId];
            foreach (var (name, destination) in cluster.Destinations ?? new Dictionary<string, DestinationConfig>())
            {
                if (!Uri.TryCreate(destination.Address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || string.IsNullOrEmpty(uri.Host))
                    errors.Add(new(at.File, $"{at.JsonPath}.Destinations.{name}.Address",
                        $"'{destination.Address}' is not an absolute http:// or https:// URL"));
            }
            foreach (var e in await yarpValidator.ValidateClusterAsync(cluster))
                errors.Add(new(at.File, at.JsonPath, e.Message));
        }

        foreach (var check in checks)
            errors.AddRange(check.Check(config));
        return errors;
    }

    public static bool IsOn(string? value) => value is not null &&
        (value.Equals("on", StringComparison.OrdinalIgnoreCase) || value.Equals("true", StringComparison.OrdinalIgnoreCase));

    private static void CheckListeners(ZcProxyOptions options, string file, List<ConfigError> errors)
    {
        if (options.Listen.Count == 0) errors.Add(new(file, "$.Listen", "at least one listener is required"));
        var seen = new HashSet<string>();
        for (int i = 0; i < options.Listen.Count; i++)
        {
            if (!ListenUrl.TryParse(options.Listen[i].Url, out var url, out var error)) errors.Add(new(file, $"$.Listen[{i}].Url", error));
            else if (!seen.Add($"{url!.Address}|{url.IsLocalhost}|{url.Port}") && url.Port != 0)
                errors.Add(new(file, $"$.Listen[{i}].Url", "this address is listed twice"));
            else if (url!.IsHttps)
                Tls.ListenerTlsSettings.TryLoad(options.Listen[i], file, $"$.Listen[{i}]", errors);
            else
            {
                Tls.ListenerTlsSettings.CheckUnused(options.Listen[i], file, $"$.Listen[{i}]", errors);
                if (ListenerProtocols.Parse(options.Listen[i].Protocols, https: false, out var protocolError) is null)
                    errors.Add(new(file, $"$.Listen[{i}].Protocols", protocolError));
            }
        }
        if (options.Admin is { } admin && !ListenUrl.TryParse(admin.Url, out _, out var adminError))
            errors.Add(new(file, "$.Admin.Url", adminError));
        if (options.ZeroCopy.SpliceThreshold < 0) errors.Add(new(file, "$.ZeroCopy.SpliceThreshold", "must not be negative"));
        if (options.Cache is { } cache)
        {
            if (string.IsNullOrWhiteSpace(cache.Path)) errors.Add(new(file, "$.Cache.Path", "must name a directory"));
            if (cache.MaxSize <= 0) errors.Add(new(file, "$.Cache.MaxSize", "must be greater than zero"));
        }
    }
}
