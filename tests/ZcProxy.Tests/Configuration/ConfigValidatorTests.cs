using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Configuration;

public class ConfigValidatorTests
{
    private static async Task<List<ConfigError>> Validate(string reverseProxy, string extra = "")
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain(reverseProxy, extra);
        return await dir.ValidateAsync();
    }

    [Fact]
    public async Task Validate_ValidConfig_HasNoErrors()
    {
        var errors = await Validate("""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**all}" } } },
              "Clusters": { "c": { "LoadBalancingPolicy": "RoundRobin", "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """);
        Assert.Empty(errors);
    }

    [Fact]
    public async Task Validate_RouteToMissingCluster_IsAnError()
    {
        var errors = await Validate("""{ "Routes": { "r": { "ClusterId": "nope", "Match": { "Path": "/" } } }, "Clusters": { } }""");
        var error = Assert.Single(errors);
        Assert.Equal("$.ReverseProxy.Routes.r.ClusterId", error.JsonPath);
        Assert.Contains("cluster 'nope' is not defined", error.Message);
    }

    [Fact]
    public async Task Validate_BadDestinationUrl_IsAnError()
    {
        var errors = await Validate("""{ "Clusters": { "c": { "Destinations": { "d": { "Address": "127.0.0.1:8080" } } } } }""");
        Assert.Contains(errors, e => e.JsonPath == "$.ReverseProxy.Clusters.c.Destinations.d.Address" && e.Message.Contains("not an absolute http"));
    }

    [Fact]
    public async Task Validate_UnknownLoadBalancingPolicy_IsAnError()
    {
        var errors = await Validate("""{ "Clusters": { "c": { "LoadBalancingPolicy": "Fastest", "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }""");
        Assert.Contains(errors, e => e.JsonPath == "$.ReverseProxy.Clusters.c" && e.Message.Contains("Fastest"));
    }

    [Fact]
    public async Task Validate_HashCookieAffinity_IsAccepted()
    {
        var errors = await Validate("""
            { "Clusters": { "c": { "SessionAffinity": { "Enabled": true, "Policy": "HashCookie", "AffinityKeyName": "k" },
                                   "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """);
        Assert.Empty(errors);
    }

    [Fact]
    public async Task Validate_CacheOnWithoutCacheSection_IsAnError()
    {
        var errors = await Validate("""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/" }, "Metadata": { "Cache": "on" } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """);
        Assert.Contains(errors, e => e.JsonPath == "$.ReverseProxy.Routes.r.Metadata.Cache");
    }

    [Theory]
    [InlineData("\"Listen\": [ { \"Url\": \"127.0.0.1:80\" } ]", "$.Listen[0].Url")]
    [InlineData("\"Listen\": [ { \"Url\": \"http://example.com:80\" } ]", "$.Listen[0].Url")]
    [InlineData("\"Listen\": [ { \"Url\": \"http://127.0.0.1:99999\" } ]", "$.Listen[0].Url")]
    [InlineData("\"Listen\": []", "$.Listen")]
    public async Task Validate_BadListener_IsAnError(string listen, string path)
    {
        using var dir = new ConfigDirectory();
        var text = $$"""{ {{listen}}, "ReverseProxy": { } }""";
        dir.WriteAtomically(dir.MainFile, text);
        var validation = await dir.ValidateAsync();
        Assert.Contains(validation, e => e.JsonPath == path);
    }

    [Fact]
    public async Task Validate_Telemetry_BadEndpointProtocolRatioAndHeaders_AreErrorsByPath()
    {
        var errors = await Validate("""{ "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }""",
            """ "Telemetry": { "Otlp": { "Endpoint": "127.0.0.1:4318", "Protocol": "http/json", "SampleRatio": 1.5, "MetricsInterval": "10ms", "Headers": { "Bad Name": "x", "X-Token": "a,b" } } } """);

        Assert.Contains(errors, e => e.JsonPath == "$.Telemetry.Otlp.Endpoint" && e.Message.Contains("is not an http:// or https:// URL"));
        Assert.Contains(errors, e => e.JsonPath == "$.Telemetry.Otlp.Protocol" && e.Message.Contains("'http/json' is not \"http/protobuf\" or \"grpc\""));
        Assert.Contains(errors, e => e.JsonPath == "$.Telemetry.Otlp.SampleRatio" && e.Message.Contains("1.5 is not between 0 and 1"));
        Assert.Contains(errors, e => e.JsonPath == "$.Telemetry.Otlp.MetricsInterval" && e.Message.Contains("between 100ms"));
        Assert.Contains(errors, e => e.JsonPath == "$.Telemetry.Otlp.Headers" && e.Message.Contains("'Bad Name' is not a valid HTTP header name"));
        Assert.Contains(errors, e => e.JsonPath == "$.Telemetry.Otlp.Headers.X-Token" && e.Message.Contains("comma"));
        Assert.Equal(6, errors.Count);
    }

    [Theory]
    [InlineData(""" "Telemetry": { "Otlp": { } } """)]
    [InlineData(""" "Telemetry": { "Otlp": { "Endpoint": "https://otel.example:4317", "Protocol": "GRPC", "SampleRatio": 0, "Headers": { "Authorization": "Bearer abc" } } } """)]
    [InlineData(""" "Telemetry": { } """)]
    public async Task Validate_Telemetry_GoodSettings_HaveNoErrors(string telemetry)
    {
        var errors = await Validate("""{ "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }""", telemetry);
        Assert.Empty(errors);
    }

    [Fact]
    public async Task Load_Telemetry_UnknownKey_IsAnError()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }""",
            """ "Telemetry": { "Otlp": { "Endpoint": "http://127.0.0.1:4318", "Sampling": 0.5 } } """);
        var (config, errors) = await ProxyServices.LoadAndValidateAsync(dir.MainFile);
        Assert.Null(config);
        Assert.Contains(errors, e => e.JsonPath == "$.Telemetry.Otlp.Sampling" && e.Message.Contains("unknown key"));
    }
}
