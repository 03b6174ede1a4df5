using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Local;

/// <summary>`check` for routes ZcProxy answers itself: every Metadata key <see cref="LocalRoute.Compile"/> would reject.</summary>
internal sealed class LocalRouteConfigCheck : IConfigCheck
{
    public IEnumerable<ConfigError> Check(LoadedConfig config)
    {
        foreach (var route in config.Routes)
        {
            var errors = new List<(string Key, string Message)>();
            LocalRoute.Compile(route, errors);
            var at = config.RouteSources[route.RouteId];
            foreach (var (key, message) in errors)
                yield return new(at.File, $"{at.JsonPath}.Metadata.{key}", message);
        }
    }
}
