using System.Net;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Discovery;

namespace ZcProxy.Tests.Discovery;

/// <summary>A cluster's destinations from DNS (SRV, or A with a port), against a DNS server the test runs on 127.0.0.1.</summary>
public class DnsDiscoveryTests
{
    private static string WriteConfig(ConfigDirectory dir, string fileOrigin, string dns) => dir.WriteMain($$"""
        { "Routes": { "r": { "ClusterId": "api", "Match": { "Path": "/{**rest}" } } },
          "Clusters": { {{ConfigDirectory.Cluster("api", "RoundRobin", ("a", fileOrigin))}} } }
        """, $$"""  "Discovery": { "Dns": { "api": {{dns}} } }  """);

    private static IEnumerable<string> Ids(InProcessProxy proxy) =>
        proxy.Get<FileConfigProvider>().Current.Clusters.Single(c => c.ClusterId == "api").Destinations!.Keys.Order();

    [Fact]
    public async Task Srv_AddsTheTargets_WithTheirWeights_AndFollowsChanges()
    {
        using var dns = new TinyDnsServer();
        await using var a = await TestOrigin.StartAsync("a");
        await using var b = await TestOrigin.StartAsync("b");
        dns.SetA("b.api.internal", IPAddress.Loopback);
        dns.SetSrv("_http._tcp.api.internal", (10, 3, (ushort)b.Port, "b.api.internal"));
        using var dir = new ConfigDirectory();
        await using var proxy = await InProcessProxy.StartAsync(WriteConfig(dir, a.Url,
            $$"""{ "Name": "_http._tcp.api.internal", "Interval": "200ms", "Server": "{{dns.Server}}" }"""));
        using var client = new HttpClient { BaseAddress = new Uri(proxy.Url) };

        await Poll.UntilAsync(async () => (await client.GetStringAsync("/")).StartsWith("b ", StringComparison.Ordinal), "the SRV target to receive traffic");
        var config = proxy.Get<FileConfigProvider>().Current.Clusters.Single(c => c.ClusterId == "api").Destinations!;
        Assert.Equal("3", config[$"127.0.0.1:{b.Port}"].Metadata!["Weight"]);
        Assert.Equal($"http://127.0.0.1:{b.Port}/", config[$"127.0.0.1:{b.Port}"].Address);

        dns.SetSrv("_http._tcp.api.internal"); // the record is withdrawn: an empty answer applies
        await Poll.UntilAsync(() => Ids(proxy).SequenceEqual(["a"]), "the withdrawn target to be removed");
    }

    [Fact]
    public async Task AddressRecords_WithTheConfiguredPort()
    {
        using var dns = new TinyDnsServer();
        await using var a = await TestOrigin.StartAsync("a");
        await using var c = await TestOrigin.StartAsync("c");
        dns.SetA("c.internal", IPAddress.Loopback);
        using var dir = new ConfigDirectory();
        await using var proxy = await InProcessProxy.StartAsync(WriteConfig(dir, a.Url,
            $$"""{ "Name": "c.internal", "Port": {{c.Port}}, "Interval": "200ms", "Server": "{{dns.Server}}" }"""));
        using var client = new HttpClient { BaseAddress = new Uri(proxy.Url) };

        await Poll.UntilAsync(async () => (await client.GetStringAsync("/")).StartsWith("c ", StringComparison.Ordinal), "the A record's address to receive traffic");
        Assert.Equal(["127.0.0.1:" + c.Port, "a"], Ids(proxy).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task ResolverDown_TheLastSetStays_AndTheViewIsStale()
    {
        using var dns = new TinyDnsServer();
        await using var a = await TestOrigin.StartAsync("a");
        await using var b = await TestOrigin.StartAsync("b");
        dns.SetA("b.api.internal", IPAddress.Loopback);
        dns.SetSrv("_http._tcp.api.internal", (10, 1, (ushort)b.Port, "b.api.internal"));
        using var dir = new ConfigDirectory();
        await using var proxy = await InProcessProxy.StartAsync(WriteConfig(dir, a.Url,
            $$"""{ "Name": "_http._tcp.api.internal", "Interval": "200ms", "Server": "{{dns.Server}}" }"""));
        await Poll.UntilAsync(() => Ids(proxy).Count() == 2, "the SRV target to be added");

        dns.Silent = true;
        await Poll.UntilAsync(() => proxy.Get<DiscoveryStatus>().Get(DnsDiscovery.SourceOf("api")) is { Current: false, StaleSince: not null },
            "the view to be marked stale");
        Assert.Equal(2, Ids(proxy).Count()); // the last good set stays in force

        dns.Silent = false;
        await Poll.UntilAsync(() => proxy.Get<DiscoveryStatus>().Get(DnsDiscovery.SourceOf("api"))?.Current == true, "the view to be current again");
    }

    [Fact]
    public async Task Check_RejectsAnAddressNameWithoutAPort()
    {
        using var dir = new ConfigDirectory();
        var main = WriteConfig(dir, "http://127.0.0.1:1", """{ "Name": "api.internal" }""");
        var (code, output) = await ProxyProcess.RunAsync("check", "--config", main);
        Assert.Equal(1, code);
        Assert.Contains("$.Discovery.Dns.api.Port: 'api.internal' is not an SRV name (_service._proto.name): A/AAAA records need a Port", output);
    }
}
