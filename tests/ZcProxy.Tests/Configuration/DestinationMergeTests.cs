using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Discovery;
using ZcProxy.Hosting;

namespace ZcProxy.Tests.Configuration;

/// <summary>Files + discovered destinations, validated as one configuration; what is wrong is rejected alone.</summary>
public class DestinationMergeTests
{
    private static async Task<(LoadedConfig Merged, List<DiscoveryRejection> Rejected)> MergeAsync(params DiscoveredDestination[] discovered)
    {
        using var dir = new ConfigDirectory();
        var main = dir.WriteMain("""
            { "Routes": { "r": { "ClusterId": "api", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { "api": { "Destinations": { "a": { "Address": "http://127.0.0.1:1/" } } },
                            "empty": { } } }
            """);
        var errors = new List<ConfigError>();
        var files = ConfigFileLoader.Load(main, errors)!;
        Assert.Empty(errors);
        var services = new ServiceCollection().AddLogging();
        services.AddZcProxyServices(files.Options);
        await using var provider = services.BuildServiceProvider();
        return await DestinationMerge.MergeAsync(files, discovered, provider.GetRequiredService<ConfigValidator>());
    }

    private static DiscoveredDestination D(string cluster, string id, string address, params (string Key, string Value)[] metadata) =>
        new(cluster, id, new DestinationConfig { Address = address, Metadata = metadata.ToDictionary(m => m.Key, m => m.Value) }, $"test {cluster}/{id}");

    private static IEnumerable<string> Ids(LoadedConfig config, string cluster) =>
        config.Clusters.Single(c => c.ClusterId == cluster).Destinations?.Keys.Order() ?? Enumerable.Empty<string>();

    [Fact]
    public async Task Discovered_AreAddedToTheFilesDestinations()
    {
        var (merged, rejected) = await MergeAsync(D("api", "b", "http://127.0.0.1:2/", ("Weight", "3")));
        Assert.Empty(rejected);
        Assert.Equal(["a", "b"], Ids(merged, "api"));
    }

    [Fact]
    public async Task AnIdTheFilesDefine_IsRejected_TheFilesWin()
    {
        var (merged, rejected) = await MergeAsync(D("api", "a", "http://127.0.0.1:9/"), D("api", "c", "http://127.0.0.1:3/"));
        Assert.Equal("http://127.0.0.1:1/", merged.Clusters.Single(c => c.ClusterId == "api").Destinations!["a"].Address);
        Assert.Equal(["a", "c"], Ids(merged, "api"));
        Assert.Contains("already defined for cluster 'api'", Assert.Single(rejected).Reason);
    }

    [Fact]
    public async Task ValidAloneButNotTogether_TheClustersDiscoveredSetIsRejected()
    {
        // A pool of backups only is invalid: no single destination is at fault, the cluster keeps its files' (none).
        var (merged, rejected) = await MergeAsync(D("empty", "x", "http://127.0.0.1:2/", ("Backup", "true")), D("api", "b", "http://127.0.0.1:2/"));
        Assert.Empty(Ids(merged, "empty"));
        Assert.Equal(["a", "b"], Ids(merged, "api"));
        Assert.Contains("every destination is a Backup", Assert.Single(rejected).Reason);
    }
}
