using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Balancing;

public class BalancingConfigCheckTests
{
    private static async Task<(string File, List<ConfigError> Errors)> Check(string clusters, string routeFile = "")
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**all}" } } }, "Clusters": { } }""");
        var file = dir.WriteAtomically("routes.d/pool.json", $$"""{ "ReverseProxy": { "Clusters": { {{clusters}} } } }""");
        return (file, await dir.ValidateAsync());
    }

    [Fact]
    public async Task ValidPoolSettings_AndConsistentHashPolicy_AreAccepted()
    {
        var (_, errors) = await Check("""
            "c": { "LoadBalancingPolicy": "ConsistentHash",
                   "Metadata": { "HashKey": "Header:X-User", "ConnectTimeout": "2s", "MaxQueue": 10, "QueueTimeout": "2s", "Retries": 2, "RetryOn": "error,timeout,502,503",
                                 "RetryTimeout": "5s", "RetryNonIdempotent": false, "RetryBodyLimit": "1MiB", "MaxFails": 3, "FailTimeout": "10s", "FailOn": "500,503" },
                   "Destinations": { "a": { "Address": "http://127.0.0.1:1/", "Metadata": { "Weight": 3, "MaxConnections": 100, "SlowStart": "30s" } },
                                     "b": { "Address": "http://127.0.0.1:2/", "Metadata": { "Backup": true } } } }
            """);
        Assert.Empty(errors);
    }

    [Fact]
    public async Task NegativeWeight_IsAnError_NamingFileAndPath()
    {
        var (file, errors) = await Check("""
            "c": { "LoadBalancingPolicy": "RoundRobin", "Destinations": { "a": { "Address": "http://127.0.0.1:1/", "Metadata": { "Weight": -2 } } } }
            """);
        var error = Assert.Single(errors);
        Assert.Equal(file, error.File);
        Assert.Equal("$.ReverseProxy.Clusters.c.Destinations.a.Metadata.Weight", error.JsonPath);
        Assert.Contains("'-2' is not a weight", error.Message);
    }

    [Fact]
    public async Task UnknownHashKey_IsAnError()
    {
        var (file, errors) = await Check("""
            "c": { "LoadBalancingPolicy": "ConsistentHash", "Metadata": { "HashKey": "Body" }, "Destinations": { "a": { "Address": "http://127.0.0.1:1/" } } }
            """);
        var error = Assert.Single(errors);
        Assert.Equal((file, "$.ReverseProxy.Clusters.c.Metadata.HashKey"), (error.File, error.JsonPath));
        Assert.Contains("unknown hash key 'Body'", error.Message);
    }

    [Fact]
    public async Task HashKeyWithoutConsistentHash_IsAnError()
    {
        var (_, errors) = await Check("""
            "c": { "LoadBalancingPolicy": "RoundRobin", "Metadata": { "HashKey": "ClientIp" }, "Destinations": { "a": { "Address": "http://127.0.0.1:1/" } } }
            """);
        Assert.Contains(errors, e => e.JsonPath == "$.ReverseProxy.Clusters.c.Metadata.HashKey" && e.Message.Contains("ConsistentHash"));
    }

    [Fact]
    public async Task OnlyBackups_IsAnError()
    {
        var (file, errors) = await Check("""
            "c": { "Destinations": { "a": { "Address": "http://127.0.0.1:1/", "Metadata": { "Backup": true } },
                                     "b": { "Address": "http://127.0.0.1:2/", "Metadata": { "Backup": "true" } } } }
            """);
        var error = Assert.Single(errors);
        Assert.Equal((file, "$.ReverseProxy.Clusters.c.Destinations"), (error.File, error.JsonPath));
        Assert.Contains("every destination is a Backup", error.Message);
    }

    [Fact]
    public async Task BadRetryAndBreakerValues_AreErrors()
    {
        var (_, errors) = await Check("""
            "c": { "Metadata": { "Retries": -1, "RetryOn": "error,418", "QueueTimeout": "soon", "FailTimeout": "100ms", "RetryBodyLimit": "lots", "FailRatio": 2, "ConnectTimeout": "0s" },
                   "Destinations": { "a": { "Address": "http://127.0.0.1:1/", "Metadata": { "MaxConnections": "x", "Backup": "maybe", "SlowStart": "slow" } } } }
            """);
        var paths = errors.Select(e => e.JsonPath).ToHashSet();
        foreach (var key in new[] { "Retries", "RetryOn", "QueueTimeout", "FailTimeout", "RetryBodyLimit", "FailRatio", "ConnectTimeout" })
            Assert.Contains($"$.ReverseProxy.Clusters.c.Metadata.{key}", paths);
        foreach (var key in new[] { "MaxConnections", "Backup", "SlowStart" })
            Assert.Contains($"$.ReverseProxy.Clusters.c.Destinations.a.Metadata.{key}", paths);
    }

    [Fact]
    public async Task UnknownPolicy_IsStillRejectedByYarp()
    {
        var (_, errors) = await Check("""
            "c": { "LoadBalancingPolicy": "Ketama", "Destinations": { "a": { "Address": "http://127.0.0.1:1/" } } }
            """);
        Assert.Contains(errors, e => e.Message.Contains("Ketama"));
    }

    [Fact]
    public async Task CheckCommand_ExitsOne_WithOneLinePerPoolProblem()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**all}" } } }, "Clusters": { } }""");
        var file = dir.WriteAtomically("routes.d/pool.json", """
            { "ReverseProxy": { "Clusters": {
                "c": { "LoadBalancingPolicy": "ConsistentHash", "Metadata": { "HashKey": "Header:" },
                       "Destinations": { "a": { "Address": "http://127.0.0.1:1/", "Metadata": { "Weight": -1, "Backup": true } } } } } } }
            """);
        var (code, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);
        Assert.Equal(1, code);
        Assert.Contains($"{file}: $.ReverseProxy.Clusters.c.Metadata.HashKey: unknown hash key 'Header:'", output);
        Assert.Contains($"{file}: $.ReverseProxy.Clusters.c.Destinations.a.Metadata.Weight: '-1' is not a weight", output);
        Assert.Contains($"{file}: $.ReverseProxy.Clusters.c.Destinations: every destination is a Backup", output);
    }
}
