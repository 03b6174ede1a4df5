using ZcProxy.Core.Configuration;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Configuration;

public class ConfigFileLoaderTests
{
    private const string OneCluster = """{ "Clusters": { "c1": { "Destinations": { "d1": { "Address": "http://127.0.0.1:1/" } } } } }""";

    [Fact]
    public void Load_MergesRoutesFromIncludedFiles()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneCluster);
        dir.WriteAtomically("routes.d/a.json", """{ "ReverseProxy": { "Routes": { "a": { "ClusterId": "c1", "Match": { "Path": "/a" } } } } }""");
        dir.WriteAtomically("routes.d/b.json", """{ "ReverseProxy": { "Routes": { "b": { "ClusterId": "c1", "Match": { "Path": "/b" } } } } }""");

        var errors = new List<ConfigError>();
        var config = ConfigFileLoader.Load(dir.MainFile, errors);

        Assert.Empty(errors);
        Assert.NotNull(config);
        Assert.Equal(["a", "b"], config.Routes.Select(r => r.RouteId).Order());
        Assert.Equal(3, config.Files.Count);
        Assert.EndsWith("b.json", config.RouteSources["b"].File);
        Assert.Equal("$.ReverseProxy.Routes.b", config.RouteSources["b"].JsonPath);
    }

    [Fact]
    public void Load_DuplicateRouteIdAcrossFiles_NamesBothFiles()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneCluster);
        dir.WriteAtomically("routes.d/a.json", """{ "ReverseProxy": { "Routes": { "same": { "ClusterId": "c1", "Match": { "Path": "/a" } } } } }""");
        dir.WriteAtomically("routes.d/b.json", """{ "ReverseProxy": { "Routes": { "same": { "ClusterId": "c1", "Match": { "Path": "/b" } } } } }""");

        var errors = new List<ConfigError>();
        Assert.Null(ConfigFileLoader.Load(dir.MainFile, errors));

        var error = Assert.Single(errors);
        Assert.EndsWith("b.json", error.File);
        Assert.Equal("$.ReverseProxy.Routes.same", error.JsonPath);
        Assert.Contains("duplicate route id 'same'", error.Message);
        Assert.Contains("a.json", error.Message);
    }

    [Fact]
    public void Load_MalformedJson_ReportsFileAndLine()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneCluster);
        dir.WriteAtomically("routes.d/broken.json", "{ \"ReverseProxy\": {\n  \"Routes\": { \"x\": \n");

        var errors = new List<ConfigError>();
        Assert.Null(ConfigFileLoader.Load(dir.MainFile, errors));

        var error = Assert.Single(errors);
        Assert.EndsWith("broken.json", error.File);
        Assert.Contains("invalid JSON at line", error.Message);
    }

    [Theory]
    [InlineData("\"ZeroCopy\": { \"Enabld\": false }", "$.ZeroCopy.Enabld", "unknown key 'Enabld'")]
    [InlineData("\"ZeroCopy\": { \"SpliceThreshold\": \"64 parsecs\" }", "$.ZeroCopy.SpliceThreshold", "expected a size")]
    [InlineData("\"Cache\": { \"Path\": \"/tmp/x\", \"Inactive\": \"soon\" }", "$.Cache.Inactive", "expected a duration")]
    [InlineData("\"Cache\": { \"MaxSize\": \"1GiB\" }", "$.Cache", "missing required key(s): 'Path'")]
    [InlineData("\"Frobnicate\": true", "$.Frobnicate", "unknown key 'Frobnicate'")]
    public void Load_BadOwnSection_ReportsJsonPath(string section, string path, string message)
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneCluster, section);

        var errors = new List<ConfigError>();
        Assert.Null(ConfigFileLoader.Load(dir.MainFile, errors));

        var error = Assert.Single(errors);
        Assert.Equal(dir.MainFile, error.File);
        Assert.Equal(path, error.JsonPath);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void Load_UnknownKeyInRoute_ReportsItsPath()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneCluster);
        dir.WriteAtomically("routes.d/a.json", """{ "ReverseProxy": { "Routes": { "r1": { "ClusterId": "c1", "Match": { "Pathh": "/a" } } } } }""");

        var errors = new List<ConfigError>();
        Assert.Null(ConfigFileLoader.Load(dir.MainFile, errors));

        var error = Assert.Single(errors);
        Assert.StartsWith("$.ReverseProxy.Routes.r1.Match", error.JsonPath);
        Assert.Contains("unknown key 'Pathh'", error.Message);
    }

    [Fact]
    public void Load_SizesDurationsAndScalarMetadata_AreParsed()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""
            { "Clusters": { "c1": { "Destinations": { "d1": { "Address": "http://127.0.0.1:1/", "Metadata": { "Weight": 3, "Backup": true } } } } } }
            """, """
            "ZeroCopy": { "SpliceThreshold": "64KiB" },
            "Cache": { "Path": "/tmp/c", "MaxSize": "10GiB", "DirectIoThreshold": 4194304, "Inactive": "10m" },
            "DrainTimeout": "1500ms"
            """);

        var errors = new List<ConfigError>();
        var config = ConfigFileLoader.Load(dir.MainFile, errors);

        Assert.Empty(errors);
        Assert.Equal(64 * 1024, config!.Options.ZeroCopy.SpliceThreshold);
        Assert.Equal(10L << 30, config.Options.Cache!.MaxSize);
        Assert.Equal(4L << 20, config.Options.Cache.DirectIoThreshold);
        Assert.Equal(TimeSpan.FromMinutes(10), config.Options.Cache.Inactive);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), config.Options.DrainTimeout);
        var metadata = config.Clusters[0].Destinations!["d1"].Metadata!;
        Assert.Equal("3", metadata["Weight"]);
        Assert.Equal("true", metadata["Backup"]);
    }

    [Fact]
    public void Load_IncludeThatCannotBeRead_IsAnError()
    {
        using var dir = new ConfigDirectory();
        File.CreateSymbolicLink(Path.Combine(dir.Root, "routes.d", "dangling.json"), Path.Combine(dir.Root, "gone.json"));
        dir.WriteMain(OneCluster);

        var errors = new List<ConfigError>();
        Assert.Null(ConfigFileLoader.Load(dir.MainFile, errors));
        Assert.Contains(errors, e => e.File.EndsWith("dangling.json") && e.Message.Contains("cannot read"));
    }

    [Fact]
    public void Load_ExplicitIncludeThatDoesNotExist_IsAnError()
    {
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, """{ "Include": [ "more/routes.json" ], "ReverseProxy": { } }""");

        var errors = new List<ConfigError>();
        Assert.Null(ConfigFileLoader.Load(dir.MainFile, errors));
        var error = Assert.Single(errors);
        Assert.Equal("$.Include", error.JsonPath);
        Assert.Contains("does not exist", error.Message);
    }

    [Fact]
    public void Load_IncludedFileWithOtherSections_IsRejected()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(OneCluster);
        dir.WriteAtomically("routes.d/a.json", """{ "Listen": [], "ReverseProxy": { } }""");

        var errors = new List<ConfigError>();
        Assert.Null(ConfigFileLoader.Load(dir.MainFile, errors));
        Assert.Contains(errors, e => e.JsonPath == "$.Listen" && e.Message.Contains("may only hold 'ReverseProxy'"));
    }
}
