using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;

namespace ZcProxy.Tests.Configuration;

/// <summary>
/// `check` catches every value the start would reject or the runtime would misbehave on, names file and JSON path,
/// never crashes, and reports every problem at once.
/// </summary>
public class CheckCompletenessTests
{
    private const string OneRoute = """
        { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
          "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
        """;

    /// <summary>`check` on a main file of <paramref name="sections"/> (no Listen/Admin of its own: nothing binds) and routes.d/*.json.</summary>
    private static async Task<(string MainFile, List<ConfigError> Errors)> CheckAsync(ConfigDirectory dir, string reverseProxy, string sections = "")
    {
        var main = dir.WriteAtomically(dir.MainFile, $$"""
            { "Include": [ "routes.d/*.json" ], {{(sections.Length > 0 ? sections + "," : "")}} "ReverseProxy": {{reverseProxy}} }
            """);
        var (config, errors) = await ProxyServices.LoadAndValidateAsync(main);
        Assert.True(config is null == errors.Count > 0, "a config comes back exactly when there is no error");
        return (main, errors);
    }

    [Theory]
    // Kestrel refuses these at start (before: accepted by check, then an unhandled exception at start).
    [InlineData("\"Limits\": { \"KeepAliveTimeout\": \"0s\" }", "$.Limits.KeepAliveTimeout", "greater than zero")]
    [InlineData("\"Limits\": { \"RequestHeadersTimeout\": \"0s\" }", "$.Limits.RequestHeadersTimeout", "greater than zero")]
    [InlineData("\"Limits\": { \"LingeringClose\": \"yes\" }", "$.Limits.LingeringClose", "must be \"on\", \"off\" or \"always\"")]
    [InlineData("\"Limits\": { \"LingeringTime\": \"0s\" }", "$.Limits.LingeringTime", "greater than zero")]
    [InlineData("\"Limits\": { \"LingeringTimeout\": \"30d\" }", "$.Limits.LingeringTimeout", "at most 24d")]
    [InlineData("\"Limits\": { \"MaxConnections\": -1 }", "$.Limits.MaxConnections", "must not be negative")]
    [InlineData("\"Limits\": { \"MaxRequestHeadersSize\": 0 }", "$.Limits.MaxRequestHeadersSize", "greater than zero")]
    // Durations TimeSpan cannot hold (before: an OverflowException out of check itself).
    [InlineData("\"DrainTimeout\": \"99999999999d\"", "$.DrainTimeout", "expected a duration")]
    [InlineData("\"DrainTimeout\": 1e300", "$.DrainTimeout", "expected a duration")]
    [InlineData("\"Cache\": { \"Path\": \"c\", \"Inactive\": \"99999999999d\" }", "$.Cache.Inactive", "expected a duration")]
    // Accepted, then every request fails or the pool misbehaves.
    [InlineData("\"ZeroCopy\": { \"ConnectTimeout\": \"0s\" }", "$.ZeroCopy.ConnectTimeout", "greater than zero")]
    [InlineData("\"ZeroCopy\": { \"ResponseHeadTimeout\": \"0s\" }", "$.ZeroCopy.ResponseHeadTimeout", "greater than zero")]
    [InlineData("\"ZeroCopy\": { \"BodyIdleTimeout\": \"0s\" }", "$.ZeroCopy.BodyIdleTimeout", "greater than zero")]
    [InlineData("\"ZeroCopy\": { \"ClientBodyTimeout\": \"0s\" }", "$.ZeroCopy.ClientBodyTimeout", "greater than zero")]
    [InlineData("\"ZeroCopy\": { \"ClientBodyTimeout\": \"30d\" }", "$.ZeroCopy.ClientBodyTimeout", "at most 24d")]
    [InlineData("\"ZeroCopy\": { \"MaxIdleConnectionsPerDestination\": -1 }", "$.ZeroCopy.MaxIdleConnectionsPerDestination", "must not be negative")]
    [InlineData("\"ZeroCopy\": { \"RelayPipeSize\": \"32KiB\" }", "$.ZeroCopy.RelayPipeSize", "power of two from 64KiB")]
    [InlineData("\"ZeroCopy\": { \"RelayPipeSize\": \"300KiB\" }", "$.ZeroCopy.RelayPipeSize", "power of two from 64KiB")]
    [InlineData("\"ZeroCopy\": { \"RelayPipeSize\": \"1GiB\" }", "$.ZeroCopy.RelayPipeSize", "power of two from 64KiB")]
    [InlineData("\"ZeroCopy\": { \"Http1\": \"nginx\" }", "$.ZeroCopy.Http1", "must be \"kestrel\" or \"own\"")]
    [InlineData("\"ZeroCopy\": { \"RelayPipeGrowSize\": \"32KiB\" }", "$.ZeroCopy.RelayPipeGrowSize", "power of two from 64KiB")]
    [InlineData("\"ZeroCopy\": { \"RelayPipeGrowSize\": \"768KiB\" }", "$.ZeroCopy.RelayPipeGrowSize", "power of two from 64KiB")]
    [InlineData("\"ZeroCopy\": { \"RelaySendLowWatermark\": \"1KiB\" }", "$.ZeroCopy.RelaySendLowWatermark", "0 (the kernel's default) or from 4KiB")]
    // Timers take at most ~24.8 days: a longer timeout throws on every request (CancelAfter, WaitAsync) or at shutdown.
    [InlineData("\"ZeroCopy\": { \"ConnectTimeout\": \"30d\" }", "$.ZeroCopy.ConnectTimeout", "at most 24d")]
    [InlineData("\"DrainTimeout\": \"30d\"", "$.DrainTimeout", "at most 24d")]
    [InlineData("\"Cache\": { \"Path\": \"c\", \"LockTimeout\": \"30d\" }", "$.Cache.LockTimeout", "at most 24d")]
    // Shapes that used to reach the start (or a NullReferenceException).
    [InlineData("\"ZeroCopy\": null", "$.ZeroCopy", "null is not a value")]
    [InlineData("\"Listen\": [ null ]", "$.Listen[0]", "null is not a value")]
    [InlineData("\"AccessLog\": { \"Path\": \"\" }", "$.AccessLog.Path", "\"stdout\", \"off\" or a file path")]
    [InlineData("\"Admin\": { \"Url\": \"https://127.0.0.1:9901\" }", "$.Admin.Url", "plain http://")]
    [InlineData("\"Admin\": { \"Url\": \"http://127.0.0.1:9901\" }, \"Listen\": [ { \"Url\": \"http://127.0.0.1:9901\" } ]", "$.Admin.Url", "already used by $.Listen[0].Url")]
    [InlineData("\"Demo\": { \"Origins\": [ \"127.0.0.1:8081\" ] }", "$.Demo.Origins[0]", "must be a URL")]
    [InlineData("\"Demo\": { \"LargeFileSize\": \"2GiB\" }", "$.Demo.LargeFileSize", "at most 1GiB")]
    public async Task Option_ThatTheStartOrRuntimeWouldRejectOrMisuse_IsAnErrorAtItsPath(string sections, string path, string message)
    {
        using var dir = new ConfigDirectory();
        var (main, errors) = await CheckAsync(dir, OneRoute, sections);

        Assert.Contains(errors, e => e.File == main && e.JsonPath == path && e.Message.Contains(message, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("\"Destinations\": { \"d\": { \"Address\": \"http://127.0.0.1:1/\", \"Metadata\": { \"SlowStart\": \"99999999999d\" } } }",
        "Destinations.d.Metadata.SlowStart", "is not a duration")]
    [InlineData("\"Metadata\": { \"ConnectTimeout\": \"30d\" }", "Metadata.ConnectTimeout", "at most 24d")]
    [InlineData("\"Metadata\": { \"QueueTimeout\": \"25d\" }", "Metadata.QueueTimeout", "at most 24d")]
    [InlineData("\"Metadata\": { \"FailTimeout\": \"99999999999d\" }", "Metadata.FailTimeout", "at most 24d")]
    [InlineData("\"HttpRequest\": { \"ActivityTimeout\": \"30d\" }", "HttpRequest.ActivityTimeout", "at most 24d")]
    [InlineData("\"HealthCheck\": { \"Active\": { \"Enabled\": true, \"Interval\": \"30d\" } }", "HealthCheck.Active.Interval", "at most 24d")]
    [InlineData("\"HealthCheck\": { \"Active\": { \"Enabled\": true, \"Interval\": 1e300 } }", "HealthCheck.Active.Interval", "expected a duration")]
    [InlineData("\"Destinations\": { \"d\": null }", "Destinations.d", "null is not a value")]
    public async Task ClusterValue_ThatTheRuntimeWouldRejectOrMisuse_IsAnErrorAtItsPath(string clusterKeys, string path, string message)
    {
        using var dir = new ConfigDirectory();
        var cluster = clusterKeys.StartsWith("\"Destinations\"", StringComparison.Ordinal) ? clusterKeys
            : clusterKeys + ", \"Destinations\": { \"d\": { \"Address\": \"http://127.0.0.1:1/\" } }";
        var (main, errors) = await CheckAsync(dir, $$"""{ "Routes": {}, "Clusters": { "c": { {{cluster}} } } }""");

        Assert.Contains(errors, e => e.File == main && e.JsonPath.StartsWith("$.ReverseProxy.Clusters.c." + path, StringComparison.Ordinal)
            && e.Message.Contains(message, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("{ \"RequestHeader\": \"X-A\", \"Set\": \"a\\r\\nX-Injected: b\" }", "Transforms[0].Set")]
    [InlineData("{ \"ResponseHeader\": \"X-B\", \"Append\": \"line\\nbreak\" }", "Transforms[0].Append")]
    [InlineData("{ \"PathPrefix\": \"/a\\u0000b\" }", "Transforms[0].PathPrefix")]
    public async Task TransformValue_WithCrLfOrNul_IsAnError(string transform, string path)
    {
        using var dir = new ConfigDirectory();
        var (main, errors) = await CheckAsync(dir, $$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" }, "Transforms": [ {{transform}} ] } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """);

        var error = Assert.Single(errors);
        Assert.Equal((main, "$.ReverseProxy.Routes.r." + path), (error.File, error.JsonPath));
        Assert.Contains("CR, LF or NUL", error.Message);
    }

    [Fact]
    public async Task RouteCacheMetadata_NeitherOnNorOff_IsAnError()
    {
        using var dir = new ConfigDirectory();
        var (_, errors) = await CheckAsync(dir, """
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" }, "Metadata": { "Cache": "yes" } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """, "\"Cache\": { \"Path\": \"c\" }");

        var error = Assert.Single(errors);
        Assert.Equal("$.ReverseProxy.Routes.r.Metadata.Cache", error.JsonPath);
    }

    [Fact]
    public async Task EveryProblem_IsReportedAtOnce_WithoutKnockOnErrors()
    {
        using var dir = new ConfigDirectory();
        dir.WriteAtomically("routes.d/a.json", """
            { "ReverseProxy": { "Routes": { "a": { "ClusterId": "broken", "Match": { "Path": "/a" } },
                                            "b": { "ClusterId": "missing", "Match": { "Path": "/b" }, "Metadata": { "Cache": "on" } } } } }
            """);
        // Two broken sections (each stops the JSON reader at its first error), a broken cluster, a bad limit, a missing cluster.
        var (main, errors) = await CheckAsync(dir, """
            { "Clusters": { "broken": { "Destinations": { "d": { "Adress": "http://127.0.0.1:1/" } } } } }
            """, """
            "ZeroCopy": { "Enabld": true }, "Cache": { "Path": "c", "MaxSize": "lots" }, "Limits": { "KeepAliveTimeout": "0s" }
            """);

        var paths = errors.Select(e => e.JsonPath).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal([
            "$.Cache.MaxSize",
            "$.Limits.KeepAliveTimeout",
            "$.ReverseProxy.Clusters.broken.Destinations.d.Adress",
            "$.ReverseProxy.Routes.b.ClusterId",
            "$.ZeroCopy.Enabld",
        ], paths);
        // Route a names the cluster that could not be read: that is not a second problem; nor is route b's
        // "Cache": "on" while the Cache section could not be read.
        Assert.Contains(errors, e => e.JsonPath == "$.ReverseProxy.Routes.b.ClusterId" && e.File.EndsWith("a.json", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.JsonPath == "$.ZeroCopy.Enabld" && e.File == main);
    }

    [Fact]
    public async Task MissingMainFile_IsOneError()
    {
        using var dir = new ConfigDirectory();
        var missing = Path.Combine(dir.Root, "nope.json");

        var (config, errors) = await ProxyServices.LoadAndValidateAsync(missing);

        Assert.Null(config);
        var error = Assert.Single(errors);
        Assert.Equal((missing, "$", "the configuration file does not exist"), (error.File, error.JsonPath, error.Message));
    }
}
