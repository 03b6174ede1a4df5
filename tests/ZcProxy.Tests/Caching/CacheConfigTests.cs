using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

public class CacheConfigTests
{
    [Fact]
    public async Task Check_ReportsBadCacheSettings_WithJsonPaths()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**all}" }, "Metadata": { "Cache": "on" } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """, """
            "Cache": { "Path": "cache", "Methods": [ "GET", "POST" ], "Statuses": [ 200, 206 ], "Key": "{scheme}{hots}{uri}", "MaxEntrySize": 0,
                       "SliceSize": "4KiB", "OpenFiles": -1 }
            """);
        var paths = (await dir.ValidateAsync()).Select(e => e.JsonPath).Order().ToArray();
        Assert.Equal(["$.Cache.Key", "$.Cache.MaxEntrySize", "$.Cache.Methods[1]", "$.Cache.OpenFiles", "$.Cache.SliceSize", "$.Cache.Statuses[1]"], paths);
    }

    [Fact]
    public async Task Check_AcceptsTheDocumentedCacheSection()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**all}" }, "Metadata": { "Cache": "on" } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """, """
            "Cache": { "Path": "/var/cache/zcproxy", "MaxSize": "10GiB", "DirectIoThreshold": "4MiB", "Inactive": "10m",
                       "MaxEntrySize": "1GiB", "MinFreeDisk": "100MiB", "LockTimeout": "5s", "Key": "{scheme}://{host}{uri}",
                       "Methods": [ "GET", "HEAD" ], "Statuses": [ 200, 301, 404 ], "DirectIo": "residency", "SliceSize": "1MiB",
                       "OpenFiles": 1000 }
            """);
        Assert.Empty(await dir.ValidateAsync());
    }

    [Theory]
    [InlineData("residency", "Residency")]
    [InlineData("threshold", "Threshold")]
    [InlineData("Off", "Off")]
    public void DirectIo_ReadsTheDocumentedValues(string value, string expected)
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(CachedRoute, $$"""
            "Cache": { "Path": "cache", "DirectIo": "{{value}}" }
            """);
        var errors = new List<ConfigError>();
        var config = ConfigFileLoader.Load(dir.MainFile, errors);
        Assert.Empty(errors);
        Assert.Equal(expected, config!.Options.Cache!.DirectIo.ToString());
    }

    [Fact]
    public void DirectIo_UnknownValue_IsAnErrorAtItsPath()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(CachedRoute, """
            "Cache": { "Path": "cache", "DirectIo": "sometimes" }
            """);
        var errors = new List<ConfigError>();
        ConfigFileLoader.Load(dir.MainFile, errors);
        var error = Assert.Single(errors);
        Assert.Equal(("$.Cache.DirectIo", "expected \"residency\", \"threshold\" or \"off\""), (error.JsonPath, error.Message));
    }

    private const string CachedRoute = """
        { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**all}" }, "Metadata": { "Cache": "on" } } },
          "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
        """;
}
