using ZcProxy.Core.Configuration;

namespace ZcProxy.Tests.Configuration;

/// <summary>Which file-system events the config watcher reacts to: the configuration's files, not their neighbours.</summary>
public sealed class ConfigPathsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("zc-paths-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string At(string relative) => Path.Combine(_root, relative);

    private ConfigPaths Paths(string includes)
    {
        Directory.CreateDirectory(At("routes.d"));
        Directory.CreateDirectory(At("deep"));
        File.WriteAllText(At("main.json"), $$"""{ "Include": [ {{includes}} ] }""");
        return ConfigPaths.Of(At("main.json"));
    }

    [Fact]
    public void TheMainFileAndIncludedFiles_AreCovered_TheirNeighboursAreNot()
    {
        var paths = Paths("\"routes.d/*.json\", \"extra.json\"");
        Assert.True(paths.Covers(At("main.json")));
        Assert.True(paths.Covers(At("extra.json")));
        Assert.True(paths.Covers(At("routes.d/new.json"))); // a file the glob will include
        Assert.True(paths.Covers(At("routes.d"))); // the folder itself: created, deleted, a symlink swapped over it
        Assert.False(paths.Covers(At("proxy.log")));
        Assert.False(paths.Covers(At("cache/ab/entry")));
        Assert.False(paths.Covers(At("main.json.swp")));
        Assert.False(paths.Covers(At("routes.d/r.json.tmp~")));
        Assert.False(paths.Covers(At("routes.d/sub/r.json"))); // "*.json" stays in its folder
        Assert.Equal(new Dictionary<string, bool> { [_root] = false, [At("routes.d")] = false }, paths.Directories);
    }

    [Fact]
    public void AGlobIntoSubfolders_IsWatchedRecursively_OnlyWhereItReaches()
    {
        var paths = Paths("\"deep/**/*.json\"");
        Assert.True(paths.Covers(At("deep/a/b/r.json")));
        Assert.False(paths.Covers(At("deep/a/b/r.txt")));
        Assert.False(paths.Covers(At("routes.d/r.json")));
        Assert.Equal(new Dictionary<string, bool> { [_root] = false, [At("deep")] = true }, paths.Directories);
    }
}
