using Microsoft.Extensions.FileSystemGlobbing;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// The paths that make up the configuration, from the main file: the main file itself, its includes (files and globs)
/// and the PEM files its https listeners name. The config watcher watches their folders and reacts only to events on
/// these paths (or on a folder on the way to them: a swapped symlink), so a cache, a log or an editor's backup in the
/// config folder costs nothing. nginx only reloads on a signal; we reload on file changes, so we must be precise.
/// </summary>
internal sealed class ConfigPaths
{
    private readonly HashSet<string> _files = new(StringComparer.Ordinal);
    private readonly List<(string Root, Matcher Glob)> _globs = [];

    private ConfigPaths() { }

    /// <summary>Folders to watch, each with whether its subfolders matter (a glob that reaches into them).</summary>
    public IReadOnlyDictionary<string, bool> Directories => _directories;
    private readonly Dictionary<string, bool> _directories = new(StringComparer.Ordinal);

    public static ConfigPaths Of(string mainFile)
    {
        var paths = new ConfigPaths();
        var main = Path.GetFullPath(mainFile);
        var mainDir = Path.GetDirectoryName(main)!;
        paths.AddFile(main);
        var (includes, tlsFiles) = ConfigFingerprint.ReadMainFile(mainFile);
        foreach (var file in tlsFiles) paths.AddFile(file);
        foreach (var pattern in includes)
        {
            var full = Path.GetFullPath(pattern, mainDir);
            var segments = full.Split(Path.DirectorySeparatorChar);
            int firstWild = Array.FindIndex(segments, IncludeResolver.HasWildcard);
            if (firstWild < 0)
            {
                paths.AddFile(full);
                continue;
            }
            var root = string.Join(Path.DirectorySeparatorChar, segments[..firstWild]);
            if (root.Length == 0) root = "/";
            var glob = new Matcher(StringComparison.Ordinal);
            glob.AddInclude(string.Join('/', segments[firstWild..]));
            paths._globs.Add((root, glob));
            paths.AddDirectory(root, recursive: firstWild < segments.Length - 1); // "dir/*/x.json", "dir/**/*.json"
        }
        paths.AddDirectory(mainDir, recursive: false);
        return paths;
    }

    /// <summary>True when a change at <paramref name="path"/> (a file or a folder) may change the configuration.</summary>
    public bool Covers(string path)
    {
        path = Path.TrimEndingDirectorySeparator(path);
        if (_files.Contains(path)) return true;
        foreach (var file in _files)
            if (IsAncestor(path, file)) return true;
        foreach (var (root, glob) in _globs)
        {
            if (path == root || IsAncestor(path, root)) return true;
            if (IsAncestor(root, path) && glob.Match(root, path).HasMatches) return true;
        }
        return false;
    }

    /// <summary>Same files, folders and globs (a reload that changed none of them keeps the watchers).</summary>
    public bool SameWatchAs(ConfigPaths? other) => other is not null
        && _directories.Count == other._directories.Count && _directories.All(d => other._directories.TryGetValue(d.Key, out var r) && r == d.Value);

    private void AddFile(string file)
    {
        _files.Add(file);
        if (Path.GetDirectoryName(file) is { } dir) AddDirectory(dir, recursive: false);
    }

    private void AddDirectory(string dir, bool recursive)
    {
        if (!Directory.Exists(dir)) return;
        _directories[dir] = recursive || (_directories.TryGetValue(dir, out var was) && was);
    }

    private static bool IsAncestor(string folder, string path)
        => path.Length > folder.Length + 1 && path.StartsWith(folder, StringComparison.Ordinal)
            && (folder.EndsWith('/') || path[folder.Length] == Path.DirectorySeparatorChar);
}
