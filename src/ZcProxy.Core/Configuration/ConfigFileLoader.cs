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
    private const string NullMessage = "null is not a value here: leave the key out for its default";

    /// <summary>The whole configuration, or null when any problem was found (each one added to <paramref name="errors"/>).</summary>
    public static LoadedConfig? Load(string mainFile, List<ConfigError> errors)
    {
        int errorsBefore = errors.Count;
        var config = Read(mainFile, errors);
        return errors.Count > errorsBefore ? null : config;
    }

    /// <summary>
    /// Reads all it can, so that validation can report every problem at once: a section, route or cluster that cannot
    /// be read is reported and left out (an unread section keeps its defaults, an unread route or cluster id still
    /// counts as defined), and everything else is read. Null only when the main file is not a readable JSON object.
    /// A config read with errors must never be applied.
    /// </summary>
    public static LoadedConfig? Read(string mainFile, List<ConfigError> errors)
    {
        mainFile = Path.GetFullPath(mainFile);
        var files = new List<string> { mainFile };
        var routes = new List<RouteConfig>();
        var clusters = new List<ClusterConfig>();
        var routeSources = new Dictionary<string, ConfigSource>(StringComparer.OrdinalIgnoreCase);
        var clusterSources = new Dictionary<string, ConfigSource>(StringComparer.OrdinalIgnoreCase);

        if (!File.Exists(mainFile) && !Directory.Exists(mainFile))
        {
            errors.Add(new(mainFile, "$", "the configuration file does not exist"));
            return null;
        }
        using var main = ParseFile(mainFile, errors);
        if (main is null) return null;
        var root = main.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new(mainFile, "$", "the configuration must be a JSON object"));
            return null;
        }

        var optionSections = new List<JsonProperty>();
        var includes = new List<string>();
        bool sawReverseProxy = false;
        foreach (var property in root.EnumerateObject())
        {
            if (string.Equals(property.Name, IncludeKey, StringComparison.OrdinalIgnoreCase))
                includes.AddRange(ReadIncludePatterns(property.Value, mainFile, errors));
            else if (string.Equals(property.Name, ReverseProxyKey, StringComparison.OrdinalIgnoreCase))
            {
                sawReverseProxy = true;
                ReadReverseProxy(property.Value, mainFile, "$.ReverseProxy", routes, clusters, routeSources, clusterSources, errors);
            }
            else
                optionSections.Add(property);
        }
        if (!sawReverseProxy) errors.Add(new(mainFile, "$", "the 'ReverseProxy' section is required"));

        var unreadSections = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var options = ReadOptions(optionSections, mainFile, errors, unreadSections);

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

        return new LoadedConfig(options, routes, clusters, files, routeSources, clusterSources) { UnreadSections = unreadSections };
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
            errors.Add(new(file, "$", $"invalid JSON at line {e.LineNumber + 1}, position {e.BytePositionInLine + 1}: {FirstSentence(e.Message)}"));
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
                // An id whose definition cannot be read is still defined: a route naming that cluster is not a second problem.
                if (isRoutes)
                {
                    var route = Deserialize<RouteConfig>(item.Value, file, itemPath, errors);
                    if (routeSources.TryGetValue(item.Name, out var first))
                        errors.Add(new(file, itemPath, $"duplicate route id '{item.Name}' (first defined in {first.File} at {first.JsonPath})"));
                    else
                    {
                        routeSources[item.Name] = source;
                        if (route is not null) routes.Add(route with { RouteId = item.Name });
                    }
                }
                else
                {
                    var cluster = Deserialize<ClusterConfig>(item.Value, file, itemPath, errors);
                    if (clusterSources.TryGetValue(item.Name, out var first))
                        errors.Add(new(file, itemPath, $"duplicate cluster id '{item.Name}' (first defined in {first.File} at {first.JsonPath})"));
                    else
                    {
                        clusterSources[item.Name] = source;
                        if (cluster is not null) clusters.Add(cluster with { ClusterId = item.Name });
                    }
                }
            }
        }
    }

    /// <summary>
    /// Each section on its own, so that one broken section does not hide the problems of the others (the serializer
    /// stops at its first error); then the sections that read cleanly, together. A broken section keeps its defaults.
    /// </summary>
    private static ZcProxyOptions ReadOptions(List<JsonProperty> sections, string file, List<ConfigError> errors, HashSet<string> unread)
    {
        var readable = new JsonObject();
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var section in sections)
        {
            if (!seen.Add(section.Name))
            {
                errors.Add(new(file, $"$.{section.Name}", "this section appears twice"));
                unread.Add(section.Name);
                continue;
            }
            if (ConfigJson.FirstNull(section.Value, $"$.{section.Name}") is { } nullAt)
            {
                errors.Add(new(file, nullAt, NullMessage));
                unread.Add(section.Name);
                continue;
            }
            var alone = new JsonObject { [section.Name] = JsonNode.Parse(section.Value.GetRawText(), documentOptions: ConfigJson.DocumentOptions) };
            try
            {
                alone.Deserialize<ZcProxyOptions>(ConfigJson.SerializerOptions);
                readable[section.Name] = JsonNode.Parse(section.Value.GetRawText(), documentOptions: ConfigJson.DocumentOptions);
            }
            catch (JsonException e)
            {
                errors.Add(new(file, e.Path ?? $"$.{section.Name}", Describe(e)));
                unread.Add(section.Name);
            }
        }
        return readable.Deserialize<ZcProxyOptions>(ConfigJson.SerializerOptions) ?? new ZcProxyOptions();
    }

    private static T? Deserialize<T>(JsonElement element, string file, string path, List<ConfigError> errors) where T : class
    {
        if (ConfigJson.FirstNull(element, path) is { } nullAt)
        {
            errors.Add(new(file, nullAt, NullMessage));
            return null;
        }
        try
        {
            return element.Deserialize<T>(ConfigJson.SerializerOptions)
                ?? throw new JsonException("must not be null");
        }
        catch (JsonException e)
        {
            errors.Add(new(file, path + (e.Path is { Length: > 1 } p ? p[1..] : ""), Describe(e)));
            return null;
        }
    }

    /// <summary>System.Text.Json's messages name .NET types; operators need the key and what was expected.</summary>
    internal static string Describe(JsonException e)
    {
        var message = e.Message;
        const string unmapped = "The JSON property '";
        if (message.StartsWith(unmapped, StringComparison.Ordinal))
        {
            var end = message.IndexOf('\'', unmapped.Length);
            return $"unknown key '{message[unmapped.Length..end]}'";
        }
        if (message.Contains("missing required properties", StringComparison.Ordinal))
        {
            var start = message.IndexOf("properties including: ", StringComparison.Ordinal);
            return start >= 0 ? $"missing required key(s): {message[(start + 22)..].TrimEnd('.')}" : "missing a required key";
        }
        if (message.StartsWith("The JSON value could not be converted", StringComparison.Ordinal))
            return e.InnerException is { } inner ? $"invalid value: {FirstSentence(inner.Message)}" : "invalid value for this key";
        return FirstSentence(message);
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return (cut >= 0 ? message[..cut] : message).Trim();
    }
}
