using System.Text.Json;
using System.Text.Json.Nodes;
using Yarp.ReverseProxy.Configuration;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// Reads the main config file and its includes into a <see cref="LoadedConfig"/>, collecting every
/// syntax and shape problem with its file and JSON path. Semantic checks are <see cref="ConfigValidator"/>'s.
/// </summary>
internal static class ConfigFileLoader
{
    private const string IncludeKey = "Include";
    private const string ReverseProxyKey = "ReverseProxy";

    public static LoadedConfig? Load(string mainFile, List<ConfigError> errors)
    {
        mainFile = Path.GetFullPath(mainFile);
        var files = new List<string> { mainFile };
        var routes = new List<RouteConfig>();
        var clusters = new List<ClusterConfig>();
        var routeSources = new Dictionary<string, ConfigSource>(StringComparer.OrdinalIgnoreCase);
        var clusterSources = new Dictionary<string, ConfigSource>(StringComparer.OrdinalIgnoreCase);
        int errorsBefore = errors.Count;

        using var main = ParseFile(mainFile, errors);
        if (main is null) return null;
        var root = main.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new(mainFile, "$", "the configuration must be a JSON object"));
            return null;
        }

        var optionSections = new JsonObject();
        var includes = new List<string>();
        bool sawReverseProxy = false;
        foreach (var property in root.EnumerateObject())
        {
            if (property.NameEquals(IncludeKey) || string.Equals(property.Name, IncludeKey, StringComparison.OrdinalIgnoreCase))
                includes.AddRange(ReadIncludePatterns(property.Value, mainFile, errors));
            else if (string.Equals(property.Name, ReverseProxyKey, StringComparison.OrdinalIgnoreCase))
            {
                sawReverseProxy = true;
                ReadReverseProxy(property.Value, mainFile, "$.ReverseProxy", routes, clusters, routeSources, clusterSources, errors);
            }
            else
                optionSections[property.Name] = JsonNode.Parse(property.Value.GetRawText(), documentOptions: ConfigJson.DocumentOptions);
        }
        if (!sawReverseProxy) errors.Add(new(mainFile, "$", "the 'ReverseProxy' section is required"));

        var options = ReadOptions(optionSections, mainFile, errors);

        foreach (var pattern in includes)
        {
            var matched = IncludeResolver.Resolve(mainFile, pattern, out var includeError);
            if (includeError is not null) errors.Add(new(mainFile, "$.Include", includeError));
            foreach (var file in matched)
            {
                if (files.Contains(file)) continue;
                files.Add(file);
                ReadIncludedFile(file, routes, clusters, routeSources, clusterSources, errors);
            }
        }

        if (errors.Count > errorsBefore || options is null) return null;
        return new LoadedConfig(options, routes, clusters, files, routeSources, clusterSources);
    }

    private static JsonDocument? ParseFile(string file, List<ConfigError> errors)
    {
        try
        {
            using var stream = File.OpenRead(file);
            return JsonDocument.Parse(stream, ConfigJson.DocumentOptions);
        }
        catch (JsonException e)
        {
            errors.Add(new(file, "$", $"invalid JSON at line {e.LineNumber + 1}, position {e.BytePositionInLine + 1}: {ConfigJson.FirstSentence(e.Message)}"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            errors.Add(new(file, "$", $"cannot read the file: {e.Message}"));
        }
        return null;
    }

    private static IEnumerable<string> ReadIncludePatterns(JsonElement value, string file, List<ConfigError> errors)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            errors.Add(new(file, "$.Include", "must be an array of file globs"));
            yield break;
        }
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(item.GetString())) yield return item.GetString()!;
            else errors.Add(new(file, $"$.Include[{i}]", "must be a non-empty string (a glob relative to the main file)"));
            i++;
        }
    }

    private static void ReadIncludedFile(string file, List<RouteConfig> routes, List<ClusterConfig> clusters,
        Dictionary<string, ConfigSource> routeSources, Dictionary<string, ConfigSource> clusterSources, List<ConfigError> errors)
    {
        using var doc = ParseFile(file, errors);
        if (doc is null) return;
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new(file, "$", "an included file must be a JSON object with a 'ReverseProxy' section"));
            return;
        }
        foreach (var property in doc.RootElement.EnumerateObject())
        {
            if (string.Equals(property.Name, ReverseProxyKey, StringComparison.OrdinalIgnoreCase))
                ReadReverseProxy(property.Value, file, "$.ReverseProxy", routes, clusters, routeSources, clusterSources, errors);
            else
                errors.Add(new(file, $"$.{property.Name}", "unknown key: an included file may only hold 'ReverseProxy'"));
        }
    }

    private static void ReadReverseProxy(JsonElement section, string file, string path, List<RouteConfig> routes, List<ClusterConfig> clusters,
        Dictionary<string, ConfigSource> routeSources, Dictionary<string, ConfigSource> clusterSources, List<ConfigError> errors)
    {
        if (section.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new(file, path, "must be an object with 'Routes' and 'Clusters'"));
            return;
        }
        foreach (var property in section.EnumerateObject())
        {
            var itemsPath = $"{path}.{property.Name}";
            bool isRoutes = string.Equals(property.Name, "Routes", StringComparison.OrdinalIgnoreCase);
            bool isClusters = string.Equals(property.Name, "Clusters", StringComparison.OrdinalIgnoreCase);
            if (!isRoutes && !isClusters)
            {
                errors.Add(new(file, itemsPath, "unknown key: 'ReverseProxy' holds 'Routes' and 'Clusters'"));
                continue;
            }
            if (property.Value.ValueKind != JsonValueKind.Object)
            {
                errors.Add(new(file, itemsPath, "must be an object keyed by id"));
                continue;
            }
            foreach (var item in property.Value.EnumerateObject())
            {
                var itemPath = $"{itemsPath}.{item.Name}";
                var source = new ConfigSource(file, itemPath);
                if (isRoutes)
                {
                    var route = Deserialize<RouteConfig>(item.Value, file, itemPath, errors);
                    if (route is null) continue;
                    if (routeSources.TryGetValue(item.Name, out var first))
                        errors.Add(new(file, itemPath, $"duplicate route id '{item.Name}' (first defined in {first.File} at {first.JsonPath})"));
                    else
                    {
                        routeSources[item.Name] = source;
                        routes.Add(route with { RouteId = item.Name });
                    }
                }
                else
                {
                    var cluster = Deserialize<ClusterConfig>(item.Value, file, itemPath, errors);
                    if (cluster is null) continue;
                    if (clusterSources.TryGetValue(item.Name, out var first))
                        errors.Add(new(file, itemPath, $"duplicate cluster id '{item.Name}' (first defined in {first.File} at {first.JsonPath})"));
                    else
                    {
                        clusterSources[item.Name] = source;
                        clusters.Add(cluster with { ClusterId = item.Name });
                    }
                }
            }
        }
    }

    private static ZcProxyOptions? ReadOptions(JsonObject sections, string file, List<ConfigError> errors)
    {
        try
        {
            return sections.Deserialize<ZcProxyOptions>(ConfigJson.SerializerOptions) ?? new ZcProxyOptions();
        }
        catch (JsonException e)
        {
            errors.Add(new(file, e.Path ?? "$", ConfigJson.Describe(e)));
            return null;
        }
    }

    private static T? Deserialize<T>(JsonElement element, string file, string path, List<ConfigError> errors) where T : class
    {
        try
        {
            return element.Deserialize<T>(ConfigJson.SerializerOptions)
                ?? throw new JsonException("must not be null");
        }
        catch (JsonException e)
        {
            errors.Add(new(file, path + (e.Path is { Length: > 1 } p ? p[1..] : ""), ConfigJson.Describe(e)));
            return null;
        }
    }
}
