using Microsoft.Net.Http.Headers;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Compression;

/// <summary>`check` and every reload: a route's Compression is "on" or "off", its CompressionTypes are media types.</summary>
internal sealed class CompressionConfigCheck : IConfigCheck
{
    public IEnumerable<ConfigError> Check(LoadedConfig config)
    {
        foreach (var route in config.Routes)
        {
            if (route.Metadata is not { } metadata) continue;
            var at = config.RouteSources[route.RouteId];
            if (metadata.TryGetValue(CompressionSettings.MetadataKey, out var on) && !ConfigValidator.IsOn(on) && !ConfigValidator.IsOff(on))
                yield return new(at.File, at.JsonPath + ".Metadata.Compression", $"'{on}' is neither \"on\" nor \"off\"");
            if (!metadata.TryGetValue(CompressionSettings.TypesMetadataKey, out var types)) continue;
            var list = CompressionSettings.ParseTypes(types);
            if (list.Count == 0) yield return new(at.File, at.JsonPath + ".Metadata.CompressionTypes", "names no media type: use e.g. \"text/html text/css application/json\"");
            foreach (var type in list)
                if (!MediaTypeHeaderValue.TryParse(type, out var parsed) || parsed.Parameters.Count > 0 || parsed.MediaType.ToString().Contains('*', StringComparison.Ordinal))
                    yield return new(at.File, at.JsonPath + ".Metadata.CompressionTypes", $"'{type}' is not a media type such as text/html (no wildcards or parameters)");
        }
    }
}
