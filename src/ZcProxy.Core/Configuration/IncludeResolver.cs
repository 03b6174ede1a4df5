using Microsoft.Extensions.FileSystemGlobbing;

namespace ZcProxy.Core.Configuration;

/// <summary>Expands the main file's Include globs (relative to the main file's folder) into a sorted file list.</summary>
internal static class IncludeResolver
{
    public static IReadOnlyList<string> Resolve(string mainFile, string pattern, out string? error)
    {
        error = null;
        var full = Path.GetFullPath(pattern, Path.GetDirectoryName(Path.GetFullPath(mainFile))!);
        if (!HasWildcard(full))
        {
            if (File.Exists(full)) return [full];
            error = $"included file '{full}' does not exist";
            return [];
        }

        // The folder part before the first wildcard segment is the search root; the rest is the glob.
        var segments = full.Split(Path.DirectorySeparatorChar);
        int firstWild = Array.FindIndex(segments, HasWildcard);
        var root = string.Join(Path.DirectorySeparatorChar, segments[..firstWild]);
        if (root.Length == 0) root = "/";
        var glob = string.Join('/', segments[firstWild..]);
        if (!Directory.Exists(root)) return [];

        var matcher = new Matcher(StringComparison.Ordinal);
        matcher.AddInclude(glob);
        return matcher.GetResultsInFullPath(root).Order(StringComparer.Ordinal).ToList();
    }

    internal static bool HasWildcard(string s) => s.IndexOfAny(['*', '?', '[']) >= 0;
}
