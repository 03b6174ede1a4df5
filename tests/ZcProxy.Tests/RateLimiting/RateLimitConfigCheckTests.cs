using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.RateLimiting;

/// <summary>`check` of the RateLimits section and of the routes' RateLimiterPolicy names.</summary>
public class RateLimitConfigCheckTests
{
    private static async Task<List<ConfigError>> CheckAsync(string routeSettings, string sections = "")
    {
        using var dir = new ConfigDirectory();
        var main = dir.WriteAtomically(dir.MainFile, $$"""
            { {{(sections.Length > 0 ? sections + "," : "")}}
              "ReverseProxy": {
                "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } {{routeSettings}} } },
                "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } } }
            """);
        var (config, errors) = await ProxyServices.LoadAndValidateAsync(main);
        Assert.True(config is null == errors.Count > 0);
        return errors;
    }

    [Theory]
    [InlineData("TokenBucket", ", \"Burst\": 5")]
    [InlineData("fixedwindow", "")]
    [InlineData("SlidingWindow", ", \"Segments\": 4, \"Per\": \"1m\"")]
    [InlineData("Concurrency", ", \"Queue\": 10")]
    public async Task RouteNamingADefinedPolicy_IsValid(string kind, string more)
    {
        // Before RateLimits existed: "policy not found" from YARP's validator for every RateLimiterPolicy name.
        var errors = await CheckAsync(", \"RateLimiterPolicy\": \"perIp\"",
            $$""" "RateLimits": { "perIp": { "Kind": "{{kind}}", "Key": "ClientIp", "Limit": 10{{more}} } } """);
        Assert.Empty(errors);
    }

    [Fact]
    public async Task PolicyNames_AreComparedWithoutCase_AndDisableNeedsNoPolicy()
    {
        Assert.Empty(await CheckAsync(", \"RateLimiterPolicy\": \"PERIP\"", """ "RateLimits": { "perIp": { "Limit": 1 } } """));
        Assert.Empty(await CheckAsync(", \"RateLimiterPolicy\": \"Disable\""));
    }

    [Fact]
    public async Task RouteNamingAnUndefinedPolicy_IsAnErrorAtTheRoute()
    {
        var errors = await CheckAsync(", \"RateLimiterPolicy\": \"nope\"", """ "RateLimits": { "perIp": { "Limit": 1 } } """);
        var error = Assert.Single(errors);
        Assert.Equal("$.ReverseProxy.Routes.r.RateLimiterPolicy", error.JsonPath);
        Assert.Contains("'nope' is not defined", error.Message);
    }

    [Fact]
    public async Task DefaultPolicyName_IsAnError()
    {
        var error = Assert.Single(await CheckAsync(", \"RateLimiterPolicy\": \"Default\""));
        Assert.Equal("$.ReverseProxy.Routes.r.RateLimiterPolicy", error.JsonPath);
        Assert.Contains("no default rate-limit policy", error.Message);
    }

    [Theory]
    [InlineData("{ \"Kind\": \"Leaky\", \"Limit\": 1 }", "$.RateLimits.p.Kind", "not a kind")]
    [InlineData("{ \"Limit\": 0 }", "$.RateLimits.p.Limit", "at least 1")]
    [InlineData("{ \"Limit\": 1, \"Key\": \"Cookie:sid\" }", "$.RateLimits.p.Key", "not a key")]
    [InlineData("{ \"Limit\": 1, \"Key\": \"Header:\" }", "$.RateLimits.p.Key", "does not name a header")]
    [InlineData("{ \"Limit\": 1, \"Per\": \"0s\" }", "$.RateLimits.p.Per", "above zero")]
    [InlineData("{ \"Limit\": 1, \"Per\": \"50ms\" }", "$.RateLimits.p.Per", "at least 100ms")]
    [InlineData("{ \"Kind\": \"SlidingWindow\", \"Limit\": 1, \"Per\": \"1s\", \"Segments\": 20 }", "$.RateLimits.p.Segments", "at least 100ms")]
    [InlineData("{ \"Kind\": \"SlidingWindow\", \"Limit\": 1, \"Segments\": 0 }", "$.RateLimits.p.Segments", "at least 1")]
    [InlineData("{ \"Kind\": \"FixedWindow\", \"Limit\": 1, \"Burst\": 3 }", "$.RateLimits.p.Burst", "only a TokenBucket")]
    [InlineData("{ \"Limit\": 1, \"Burst\": -1 }", "$.RateLimits.p.Burst", "must not be negative")]
    [InlineData("{ \"Limit\": 1, \"Queue\": -1 }", "$.RateLimits.p.Queue", "must not be negative")]
    [InlineData("{ \"Limit\": 1, \"Status\": 200 }", "$.RateLimits.p.Status", "4xx or 5xx")]
    [InlineData("{ \"Limit\": 1, \"Rate\": 5 }", "$.RateLimits.p", "Rate")]
    public async Task BadPolicy_IsAnErrorAtItsPath(string policy, string path, string message)
    {
        var errors = await CheckAsync("", $$""" "RateLimits": { "p": {{policy}} } """);
        Assert.Contains(errors, e => e.JsonPath.StartsWith(path, StringComparison.Ordinal) && e.Message.Contains(message, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Default")]
    [InlineData("disable")]
    public async Task ReservedPolicyName_IsAnError(string name)
    {
        var errors = await CheckAsync("", $$""" "RateLimits": { "{{name}}": { "Limit": 1 } } """);
        Assert.Contains(errors, e => e.JsonPath == $"$.RateLimits.{name}" && e.Message.Contains("reserved"));
    }

    [Fact]
    public async Task NegativeConnectionsPerClient_IsAnError()
    {
        var errors = await CheckAsync("", """ "Limits": { "MaxConnectionsPerClient": -1 } """);
        Assert.Contains(errors, e => e.JsonPath == "$.Limits.MaxConnectionsPerClient" && e.Message.Contains("must not be negative"));
    }
}
