using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching.Peers;

/// <summary>`check` on Cache.Peers.</summary>
public class PeerConfigTests
{
    private const string Route = """
        { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**all}" }, "Metadata": { "Cache": "on" } } },
          "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
        """;

    private static async Task<string[]> ProblemsAsync(string peers, string extra = "")
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(Route, $$"""
            "Cache": { "Path": "cache", "Peers": {{peers}} } {{extra}}
            """);
        return (await dir.ValidateAsync()).Select(e => $"{e.JsonPath}: {e.Message}").Order().ToArray();
    }

    [Fact]
    public async Task Check_AcceptsTheDocumentedPeers()
    {
        Assert.Empty(await ProblemsAsync("""
            { "Self": "http://10.0.1.1:8080", "Nodes": [ "http://10.0.1.1:8080", "http://10.0.1.2:8080/", "http://10.0.1.3:8080" ],
              "ConnectTimeout": "1s", "FailTimeout": "10s" }
            """));
        Assert.Empty(await ProblemsAsync("""{ "Self": "http://10.0.1.1:8080" }""", """, "Discovery": { "Etcd": { } }"""));
    }

    [Fact]
    public async Task Check_ReportsBadPeers_WithJsonPaths()
    {
        var problems = await ProblemsAsync("""
            { "Self": "http://10.0.1.9:8080", "Nodes": [ "http://10.0.1.1:8080", "https://10.0.1.2:8443", "http://10.0.1.1:8080/", "http://10.0.1.4:8080/x" ],
              "ConnectTimeout": "0s", "FailTimeout": "30d" }
            """);
        Assert.Collection(problems,
            p => Assert.StartsWith("$.Cache.Peers.ConnectTimeout: must be greater than zero", p),
            p => Assert.StartsWith("$.Cache.Peers.FailTimeout: must not be negative", p),
            p => Assert.Equal("$.Cache.Peers.Nodes[1]: 'https://10.0.1.2:8443' is not an http://HOST:PORT URL (peers talk plain HTTP/1.1, so owners' answers can be spliced)", p),
            p => Assert.Equal("$.Cache.Peers.Nodes[2]: 'http://10.0.1.1:8080/' is listed twice", p),
            p => Assert.Equal("$.Cache.Peers.Nodes[3]: 'http://10.0.1.4:8080/x' must be http://HOST:PORT without a path, query or user", p),
            p => Assert.Equal("$.Cache.Peers.Self: 'http://10.0.1.9:8080' is not one of Nodes (every node must hash keys over the same list)", p));
    }

    [Fact]
    public async Task Check_WantsNodes_OrEtcd()
    {
        Assert.Equal(["$.Cache.Peers.Nodes: must list the nodes (Self included), or configure Discovery.Etcd to read them from {Prefix}peers/"],
            await ProblemsAsync("""{ "Self": "http://10.0.1.1:8080" }"""));
    }
}
