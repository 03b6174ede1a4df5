namespace ZcProxy.Tests.Infrastructure;

/// <summary>The checkout the tests were built from (the folder holding ZcProxy.sln).</summary>
public static class Repository
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "ZcProxy.sln")))
            dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException($"no ZcProxy.sln above {AppContext.BaseDirectory}");
        return dir;
    }
}
