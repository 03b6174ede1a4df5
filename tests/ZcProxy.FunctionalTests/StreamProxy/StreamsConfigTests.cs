using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;

namespace ZcProxy.Tests.StreamProxy;

/// <summary>`check` and reload validation of the Streams section and of the clusters it names.</summary>
public sealed class StreamsConfigTests
{
    private const string StreamCluster = """ "pg": { "Destinations": { "a": { "Address": "tcp://127.0.0.1:5432" } } } """;
    private const string HttpCluster = """ "web": { "Destinations": { "w": { "Address": "http://127.0.0.1:8081/" } } } """;

    private static async Task<List<ConfigError>> ValidateAsync(string clusters, string streams, string routes = "")
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""{ "Routes": { {{routes}} }, "Clusters": { {{clusters}} } }""", $$""" "Streams": { {{streams}} } """);
        var errors = new List<ConfigError>();
        var config = ConfigFileLoader.Load(dir.MainFile, errors);
        if (config is null) return errors;
        return await ProxyServices.ValidateAsync(config);
    }

    [Fact]
    public async Task Streams_TcpClusterBesideHttpRoutes_IsValid()
    {
        var errors = await ValidateAsync($"{StreamCluster}, {HttpCluster}",
            """ "pg": { "Listen": "127.0.0.1:0", "ClusterId": "pg", "IdleTimeout": "10m", "ProxyProtocol": "v2" } """,
            """ "r": { "ClusterId": "web", "Match": { "Path": "/{**all}" } } """);
        Assert.Empty(errors);
    }

    [Fact]
    public async Task TcpDestination_InAnHttpCluster_IsRejected()
    {
        var errors = await ValidateAsync("""
            "web": { "Destinations": { "w": { "Address": "tcp://127.0.0.1:5432" } } }
            """, "", """ "r": { "ClusterId": "web", "Match": { "Path": "/{**all}" } } """);
        var error = Assert.Single(errors);
        Assert.Equal("$.ReverseProxy.Clusters.web.Destinations.w.Address", error.JsonPath);
        Assert.Contains("only clusters named by a 'Streams' entry may use tcp://", error.Message);
    }

    [Fact]
    public async Task HttpRoute_ToAStreamCluster_IsRejected()
    {
        var errors = await ValidateAsync(StreamCluster, """ "pg": { "Listen": "127.0.0.1:0", "ClusterId": "pg" } """,
            """ "r": { "ClusterId": "pg", "Match": { "Path": "/{**all}" } } """);
        var error = Assert.Single(errors);
        Assert.Equal("$.ReverseProxy.Routes.r.ClusterId", error.JsonPath);
        Assert.Contains("serves a stream", error.Message);
    }

    [Theory]
    [InlineData("http://127.0.0.1:5432/")]
    [InlineData("tcp://127.0.0.1")]           // no port
    [InlineData("tcp://127.0.0.1:5432/db")]   // a path
    [InlineData("127.0.0.1:5432")]
    public async Task StreamCluster_WithoutTcpHostPort_IsRejected(string address)
    {
        var errors = await ValidateAsync($$""" "pg": { "Destinations": { "a": { "Address": "{{address}}" } } } """,
            """ "pg": { "Listen": "127.0.0.1:0", "ClusterId": "pg" } """);
        var error = Assert.Single(errors);
        Assert.Equal("$.ReverseProxy.Clusters.pg.Destinations.a.Address", error.JsonPath);
        Assert.Contains("tcp://HOST:PORT", error.Message);
    }

    [Theory]
    [InlineData(""" "Listen": "localhost:5433", "ClusterId": "pg" """, "$.Streams.pg.Listen", "must be an IP address")]
    [InlineData(""" "Listen": "tcp://127.0.0.1:5433", "ClusterId": "pg" """, "$.Streams.pg.Listen", "address and port")]
    [InlineData(""" "Listen": "127.0.0.1:70000", "ClusterId": "pg" """, "$.Streams.pg.Listen", "address and port")]
    [InlineData(""" "Listen": "127.0.0.1:0", "ClusterId": "nope" """, "$.Streams.pg.ClusterId", "cluster 'nope' is not defined")]
    [InlineData(""" "Listen": "127.0.0.1:0", "ClusterId": "pg", "IdleTimeout": "0s" """, "$.Streams.pg.IdleTimeout", "above zero")]
    [InlineData(""" "Listen": "127.0.0.1:0", "ClusterId": "pg", "IdleTimeout": "soon" """, "$.Streams.pg.IdleTimeout", "duration")]
    [InlineData(""" "Listen": "127.0.0.1:0", "ClusterId": "pg", "ProxyProtocol": "v3" """, "$.Streams.pg.ProxyProtocol", "\"off\", \"v1\" or \"v2\"")]
    [InlineData(""" "Listen": "127.0.0.1:0", "ClusterId": "pg", "Timeout": "1s" """, "$.Streams.pg.Timeout", "unknown key 'Timeout'")]
    [InlineData(""" "ClusterId": "pg" """, "$.Streams.pg", "Listen")]
    public async Task BadStreamSetting_IsReportedWithItsJsonPath(string stream, string path, string message)
    {
        var errors = await ValidateAsync(StreamCluster, $$""" "pg": { {{stream}} } """);
        Assert.Contains(errors, e => e.JsonPath == path && e.Message.Contains(message));
        // Nothing else is reported, but for a stream naming another cluster: then pg's tcp:// destinations are an HTTP cluster's.
        Assert.All(errors, e => Assert.True(e.JsonPath == path || e.JsonPath == "$.ReverseProxy.Clusters.pg.Destinations.a.Address", e.ToString()));
    }

    [Fact]
    public async Task NullStream_OrNullStreamDestination_IsAnErrorNotACrash()
    {
        var errors = await ValidateAsync(""" "pg": { "Destinations": { "a": null } } """, """ "pg": { "Listen": "127.0.0.1:0", "ClusterId": "pg" }, "x": null """);
        Assert.Contains(errors, e => e.JsonPath == "$.Streams.x" && e.Message.Contains("null is not a value here"));
        Assert.Contains(errors, e => e.JsonPath == "$.ReverseProxy.Clusters.pg.Destinations.a" && e.Message.Contains("null is not a value here"));
    }

    [Fact]
    public async Task TwoStreams_OnOneAddress_OrOnTheHttpListener_AreRejected()
    {
        using var dir = new ConfigDirectory();
        File.WriteAllText(dir.MainFile, $$"""
            {
              "Listen": [ { "Url": "http://127.0.0.1:18080" } ],
              "Streams": {
                "a": { "Listen": "127.0.0.1:15433", "ClusterId": "pg" },
                "b": { "Listen": "127.0.0.1:15433", "ClusterId": "pg" },
                "c": { "Listen": "*:18080", "ClusterId": "pg" }
              },
              "ReverseProxy": { "Clusters": { {{StreamCluster}} } }
            }
            """);
        var errors = new List<ConfigError>();
        var config = ConfigFileLoader.Load(dir.MainFile, errors);
        errors.AddRange(await ProxyServices.ValidateAsync(config!));
        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.JsonPath == "$.Streams.b.Listen" && e.Message.Contains("stream 'a' listens on 127.0.0.1:15433 already"));
        Assert.Contains(errors, e => e.JsonPath == "$.Streams.c.Listen" && e.Message.Contains("HTTP listener http://127.0.0.1:18080"));
    }

    [Fact]
    public async Task StreamCluster_HttpOnlySettings_AreRejected()
    {
        var errors = await ValidateAsync("""
            "pg": {
              "LoadBalancingPolicy": "ConsistentHash",
              "Metadata": { "HashKey": "Header:X-User" },
              "HealthCheck": { "Active": { "Enabled": true, "Path": "/healthz" }, "Passive": { "Enabled": true } },
              "Destinations": { "a": { "Address": "tcp://127.0.0.1:5432" } }
            }
            """, """ "pg": { "Listen": "127.0.0.1:0", "ClusterId": "pg" } """);
        Assert.Equal(3, errors.Count);
        Assert.Contains(errors, e => e.JsonPath == "$.ReverseProxy.Clusters.pg.Metadata.HashKey" && e.Message.Contains("ClientIp"));
        Assert.Contains(errors, e => e.JsonPath == "$.ReverseProxy.Clusters.pg.HealthCheck.Active.Path" && e.Message.Contains("TCP connect"));
        Assert.Contains(errors, e => e.JsonPath == "$.ReverseProxy.Clusters.pg.HealthCheck.Passive" && e.Message.Contains("MaxFails"));
    }

    [Fact]
    public async Task StreamListen_OnABusyPort_TheStartFailsInOneLine()
    {
        using var holder = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        holder.Start();
        int busy = ((System.Net.IPEndPoint)holder.LocalEndpoint).Port;
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""{ "Clusters": { {{StreamCluster}} } }""", $$""" "Streams": { "pg": { "Listen": "127.0.0.1:{{busy}}", "ClusterId": "pg" } } """);

        using var proxy = ProxyProcess.Start(["--config", dir.MainFile]);
        await proxy.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, proxy.ExitCode);
        Assert.Contains($"zcproxy: not started: {dir.MainFile}: $.Streams.pg.Listen: bind() to 127.0.0.1:{busy} failed (98: Address already in use)", proxy.Lines);
        Assert.DoesNotContain(proxy.Lines, l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal)); // no stack trace
    }

    [Fact]
    public async Task Check_OnTheRealBinary_NamesFileAndJsonPath()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""{ "Clusters": { {{StreamCluster}} } }""", """ "Streams": { "pg": { "Listen": "127.0.0.1:0", "ClusterId": "pgg" } } """);
        var (code, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);
        Assert.Equal(1, code);
        Assert.Contains($"{dir.MainFile}: $.Streams.pg.ClusterId: cluster 'pgg' is not defined in any configuration file", output);
    }
}
