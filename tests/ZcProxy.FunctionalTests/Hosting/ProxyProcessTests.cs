using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting;

/// <summary>The real executable: `check`, SIGHUP reload, SIGTERM exit.</summary>
public class ProxyProcessTests
{
    private static readonly HttpClient Client = new() { Timeout = TimeSpan.FromSeconds(30) };

    [Fact]
    public async Task Check_ValidConfig_Exits0()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }""");

        var (code, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);

        Assert.Equal(0, code);
        Assert.StartsWith("configuration OK", output);
    }

    [Fact]
    public async Task Check_InvalidConfig_Exits1_WithOneLinePerProblemNamingFileAndPath()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Clusters": { "c": { "Destinations": { "d": { "Address": "nowhere" } } } } }""", "\"ZeroCopy\": { \"Enabld\": true }");
        dir.WriteAtomically("routes.d/r.json", """{ "ReverseProxy": { "Routes": { "r": { "ClusterId": "missing", "Match": { "Path": "/" } } } } }""");

        var (code, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);

        Assert.Equal(1, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.StartsWith(dir.MainFile + ": $.ZeroCopy.Enabld: unknown key"));
        Assert.DoesNotContain("configuration OK", output);
    }

    [Fact]
    public async Task Check_RouteErrors_NameTheIncludedFile()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Clusters": { "c": { "Destinations": { "d": { "Address": "nowhere" } } } } }""");
        dir.WriteAtomically("routes.d/r.json", """{ "ReverseProxy": { "Routes": { "r": { "ClusterId": "missing", "Match": { "Path": "/" } } } } }""");

        var (code, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);

        Assert.Equal(1, code);
        Assert.Contains(Path.Combine(dir.Root, "routes.d", "r.json") + ": $.ReverseProxy.Routes.r.ClusterId: cluster 'missing' is not defined", output);
        Assert.Contains(dir.MainFile + ": $.ReverseProxy.Clusters.c.Destinations.d.Address: 'nowhere' is not an absolute", output);
    }

    [Fact]
    public async Task Check_DurationTooLongForTimeSpan_IsAnErrorLine_NotACrash()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }""",
            "\"DrainTimeout\": \"99999999999d\"");

        var (code, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);

        Assert.Equal(1, code);
        Assert.DoesNotContain("   at ", output);
        Assert.StartsWith($"{dir.MainFile}: $.DrainTimeout: expected a duration", Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Fact]
    public async Task Reload_ChangingLimits_SaysARestartIsNeeded()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        var routes = $$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }
            """;
        dir.WriteMain(routes);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile]);
        var (url, _) = await proxy.WaitForListenersAsync();

        dir.WriteMain(routes, "\"Limits\": { \"KeepAliveTimeout\": \"5s\" }");

        await proxy.WaitForLineAsync(@"'Limits' changed to .*KeepAliveTimeout 00:00:05.*: this takes effect only after a restart");
        await proxy.WaitForLineAsync(@"configuration reloaded: 1 routes, 1 clusters");
        Assert.Equal("A GET /x", await Client.GetStringAsync(url + "/x"));
    }

    [Fact]
    public async Task Reload_ChangingTelemetry_SaysARestartIsNeeded()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        var routes = $$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }
            """;
        dir.WriteMain(routes);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile]);
        var (url, _) = await proxy.WaitForListenersAsync();

        dir.WriteMain(routes, "\"Telemetry\": { \"Otlp\": { \"Endpoint\": \"http://127.0.0.1:1\", \"Protocol\": \"grpc\" } }");

        await proxy.WaitForLineAsync(@"'Telemetry' changed to OTLP grpc to http://127.0.0.1:1: this takes effect only after a restart");
        await proxy.WaitForLineAsync(@"configuration reloaded: 1 routes, 1 clusters");
        Assert.Equal("A GET /x", await Client.GetStringAsync(url + "/x"));
    }

    [Fact]
    public async Task Check_ShippedDefaultConfig_IsValid()
    {
        var (code, output) = await ProxyProcess.RunAsync("check", "--config", Path.Combine(Repository.Root, "conf", "zcproxy.json"));

        Assert.True(code == 0, output);
    }

    [Fact]
    public async Task Sighup_Reloads_AndSigterm_ExitsZero()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }
            """);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile]);
        var (url, _) = await proxy.WaitForListenersAsync();
        Assert.Equal("A GET /x", await Client.GetStringAsync(url + "/x"));

        proxy.Signal("HUP");
        await proxy.WaitForLineAsync(@"configuration reloaded: 1 routes, 1 clusters \(SIGHUP\)");
        Assert.Equal("A GET /y", await Client.GetStringAsync(url + "/y"));

        proxy.Signal("TERM");
        await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, proxy.ExitCode);
    }

    [Fact]
    public async Task Start_WithInvalidConfig_Exits1_AndSaysWhy()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Routes": { "r": { "ClusterId": "nope", "Match": { "Path": "/" } } } }""");

        var (code, output) = await ProxyProcess.RunAsync("--config", dir.MainFile);

        Assert.Equal(1, code);
        Assert.Contains("cluster 'nope' is not defined", output);
    }
}
