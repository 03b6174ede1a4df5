using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// `check` and reload validation of the access log: a Format that compiles (known $variables), a Path, and route
/// Metadata "AccessLog" values ("on" or "off").
/// </summary>
internal sealed class AccessLogConfigCheck : IConfigCheck
{
    public IEnumerable<ConfigError> Check(LoadedConfig config)
    {
        var mainFile = config.Files[0];
        var log = config.Options.AccessLog;
        if (AccessLogFormat.Parse(log.Format, out var error) is null)
            yield return new ConfigError(mainFile, "$.AccessLog.Format", error!);
        if (string.IsNullOrWhiteSpace(log.Path))
            yield return new ConfigError(mainFile, "$.AccessLog.Path", "must be \"stdout\", \"off\" or a file path");
        // Whether the file can be opened is checked at start (StartupChecks) and on reopen, not by `check`.

        foreach (var route in config.Routes)
        {
            if (route.Metadata is null || !route.Metadata.TryGetValue(AccessLogMiddleware.RouteMetadataKey, out var value)) continue;
            if (value.Equals("on", StringComparison.OrdinalIgnoreCase) || value.Equals("off", StringComparison.OrdinalIgnoreCase)) continue;
            var at = config.RouteSources.TryGetValue(route.RouteId, out var source) ? source : new ConfigSource(mainFile, $"$.ReverseProxy.Routes.{route.RouteId}");
            yield return new ConfigError(at.File, $"{at.JsonPath}.Metadata.{AccessLogMiddleware.RouteMetadataKey}", $"'{value}' is not \"on\" or \"off\"");
        }
    }
}
