using ZcProxy.Core.Configuration;
using ZcProxy.Core.Output;

namespace ZcProxy.Core.Local;

/// <summary>
/// A route that serves a directory (nginx <c>root</c> + <c>index</c>): route Metadata <c>"Static": "/srv/www"</c> (an
/// absolute directory; the whole request path is looked up below it, as nginx's <c>root</c>) and
/// <c>"StaticIndex": "index.html"</c> (the file a path ending in "/" serves; nginx's default, index.html). How bytes leave
/// is the cache's rule (<see cref="FileRangeSending"/>): <c>"StaticDirectIo": "residency" | "threshold" | "off"</c> and
/// <c>"StaticDirectIoThreshold": "4MiB"</c>, with the Cache section's defaults.
/// </summary>
internal sealed class StaticRoute
{
    public const string RootKey = "Static";
    public const string IndexKey = "StaticIndex";
    public const string DirectIoKey = "StaticDirectIo";
    public const string DirectIoThresholdKey = "StaticDirectIoThreshold";

    private StaticRoute(string root, string index, DirectIoPolicy directIo)
    {
        Root = root;
        Index = index;
        DirectIo = directIo;
    }

    public DirectIoPolicy DirectIo { get; }

    /// <summary>The root's real path and when it was resolved; null until the first request. One reference: swapped whole.</summary>
    internal volatile ResolvedRoot? CachedRealRoot;

    /// <summary>The root as configured, without a final "/" ("" for "/").</summary>
    public string Root { get; }

    public string Index { get; }

    public static StaticRoute? Parse(IReadOnlyDictionary<string, string> metadata, List<(string Key, string Message)> errors)
    {
        int before = errors.Count;
        var root = metadata[RootKey];
        if (!Path.IsPathFullyQualified(root)) errors.Add((RootKey, $"'{root}' must be an absolute directory path"));
        else if (!Directory.Exists(root)) errors.Add((RootKey, $"the directory '{root}' does not exist"));
        if (metadata.ContainsKey(DirectAnswer.ReturnKey)) errors.Add((RootKey, $"a route either serves files or answers with '{DirectAnswer.ReturnKey}', not both"));
        var index = metadata.TryGetValue(IndexKey, out var i) ? i : "index.html";
        if (index.Length == 0 || index.Contains('/', StringComparison.Ordinal) || index is "." or ".." || index.Contains('\0', StringComparison.Ordinal))
            errors.Add((IndexKey, $"'{index}' must be a file name (no '/')"));
        var defaults = new CacheOptions { Path = "" }; // the same defaults as the cache's DirectIo and DirectIoThreshold
        var mode = defaults.DirectIo;
        if (metadata.TryGetValue(DirectIoKey, out var m))
        {
            if (m.ToLowerInvariant() is "residency" or "threshold" or "off") mode = Enum.Parse<DirectIoMode>(m, ignoreCase: true);
            else errors.Add((DirectIoKey, $"'{m}' is not \"residency\", \"threshold\" or \"off\""));
        }
        long threshold = defaults.DirectIoThreshold;
        if (metadata.TryGetValue(DirectIoThresholdKey, out var t) && (!ByteSize.TryParse(t, out threshold) || threshold <= 0))
            errors.Add((DirectIoThresholdKey, $"'{t}' is not a size above zero (e.g. \"4MiB\")"));
        return errors.Count > before ? null : new StaticRoute(root.TrimEnd('/'), index, new DirectIoPolicy(mode, threshold));
    }
}

/// <summary>A static root's real path (null: it does not exist) as resolved at <see cref="At"/> (Environment.TickCount64).</summary>
internal sealed record ResolvedRoot(long At, string? Path);
