using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Tests.Diagnostics;

/// <summary>The access log's formats (combined, json, templates), per-route off, SIGUSR1 reopen, and its cost per line.</summary>
public class AccessLogFormatTests
{
    private static readonly HttpClient Client = new();

    private static async Task<string[]> LinesAsync(string format, string path, string routeMetadata = "")
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        var logFile = Path.Combine(dir.Root, "access.log");
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } },
                          "quiet": { "ClusterId": "a", "Match": { "Path": "/quiet" }, "Metadata": { "AccessLog": "off" {{routeMetadata}} } } },
              "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", origin.Url))}} } }
            """, $$"""
            "AccessLog": { "Path": "{{logFile}}", "Format": {{JsonSerializer.Serialize(format)}} }
            """);
        await using (var proxy = await InProcessProxy.StartAsync(dir.MainFile))
        {
            (await Client.GetAsync(proxy.Url + "/quiet")).EnsureSuccessStatusCode();
            using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url + path);
            request.Headers.UserAgent.ParseAdd("tester/1.0");
            request.Headers.Add("X-Custom", "v \"1\"");
            (await Client.SendAsync(request)).EnsureSuccessStatusCode();
            await Poll.UntilAsync(() => File.Exists(logFile) && File.ReadAllText(logFile).EndsWith('\n') && File.ReadAllText(logFile).Length > 0, "the access-log line");
        }
        var lines = File.ReadAllLines(logFile);
        Assert.DoesNotContain(lines, l => l.Contains("/quiet")); // the route with "AccessLog": "off"
        return lines;
    }

    [Fact]
    public async Task Combined_IsNginxsCombinedExactly()
    {
        var line = Assert.Single(await LinesAsync("combined", "/page?x=1"));
        Assert.Matches(new Regex(@"^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] ""GET /page\?x=1 HTTP/1\.1"" 200 \d+ ""-"" ""tester/1\.0""$"), line);
    }

    [Fact]
    public async Task Json_IsOneObjectPerLine_WithNumbersAndNulls()
    {
        var line = Assert.Single(await LinesAsync("json", "/j%20son?q=\"x\""));
        using var doc = JsonDocument.Parse(line);
        var o = doc.RootElement;
        Assert.Equal("GET", o.GetProperty("request_method").GetString());
        Assert.Equal("/j%20son?q=%22x%22", o.GetProperty("request_uri").GetString());
        Assert.Equal(200, o.GetProperty("status").GetInt32());
        Assert.True(o.GetProperty("request_time").GetDouble() >= 0);
        Assert.True(o.GetProperty("upstream_response_time").GetDouble() >= 0);
        Assert.True(o.GetProperty("upstream_header_time").GetDouble() >= 0);
        Assert.StartsWith("http://127.0.0.1:", o.GetProperty("upstream_addr").GetString());
        Assert.Equal(JsonValueKind.Null, o.GetProperty("upstream_cache_status").ValueKind);
        Assert.Equal(JsonValueKind.Null, o.GetProperty("http_referer").ValueKind);
        Assert.Equal(("r", "a", "tester/1.0"), (o.GetProperty("route").GetString(), o.GetProperty("cluster").GetString(), o.GetProperty("http_user_agent").GetString()));
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$", o.GetProperty("time_iso8601").GetString());
    }

    [Fact]
    public async Task Template_TakesNginxVariables_AndEscapesValues()
    {
        var line = Assert.Single(await LinesAsync("$request_method ${uri}|$args|$http_x_custom|$sent_http_content_type|$status|$upstream_cache_status|$route", "/t?a=1"));
        Assert.Equal("GET /t|a=1|v \\x221\\x22|text/plain; charset=utf-8|200|-|r", line);
    }

    [Theory]
    [InlineData("$nope", "unknown variable '$nope'")]
    [InlineData("${status", "has no closing '}'")]
    public void Template_WithAnUnknownVariable_IsAConfigError(string format, string message)
    {
        Assert.Null(AccessLogFormat.Parse(format, out var error));
        Assert.Contains(message, error);
    }

    [Fact]
    public async Task Check_RejectsUnknownVariablesAndBadRouteSwitches()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" }, "Metadata": { "AccessLog": "maybe" } } },
              "Clusters": { "a": { "Destinations": { "a1": { "Address": "http://127.0.0.1:1/" } } } } }
            """, """ "AccessLog": { "Path": "off", "Format": "$remote_addr $bogus" } """);
        var (exit, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);
        Assert.Equal(1, exit);
        Assert.Contains("$.AccessLog.Format: unknown variable '$bogus'", output);
        Assert.Contains("$.ReverseProxy.Routes.r.Metadata.AccessLog: 'maybe' is not \"on\" or \"off\"", output);
    }

    /// <summary>Path and Format follow a reload (no restart): the next line uses the new ones.</summary>
    [Fact]
    public async Task Reload_ChangesPathAndFormat()
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        string first = Path.Combine(dir.Root, "first.log"), second = Path.Combine(dir.Root, "second.log");
        var routes = $$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", origin.Url))}} } }
            """;
        dir.WriteMain(routes, $$""" "AccessLog": { "Path": "{{first}}", "Format": "combined" } """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        await Client.GetStringAsync(proxy.Url + "/one");
        await Poll.UntilAsync(() => File.Exists(first) && File.ReadAllText(first).Contains("/one"), "the first line");

        dir.WriteMain(routes, $$""" "AccessLog": { "Path": "{{second}}", "Format": "$request_method $uri $status" } """);
        Assert.True((await proxy.Get<ZcProxy.Core.Configuration.FileConfigProvider>().ReloadAsync("test")).Applied);
        await Client.GetStringAsync(proxy.Url + "/two");
        await Poll.UntilAsync(() => File.Exists(second) && File.ReadAllText(second).Contains("GET /two 200\n"), "the line in the new file and format");
        Assert.DoesNotContain("/two", File.ReadAllText(first));
    }

    /// <summary>logrotate moves the file and sends SIGUSR1: the next lines go to a new file of the same name.</summary>
    [Fact]
    public async Task Sigusr1_ReopensTheFile()
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        var logFile = Path.Combine(dir.Root, "access.log");
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", origin.Url))}} } }
            """, $$""" "AccessLog": { "Path": "{{logFile}}" } """);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile]);
        var (url, _) = await proxy.WaitForListenersAsync();
        await Client.GetStringAsync(url + "/before");
        await Poll.UntilAsync(() => File.Exists(logFile) && File.ReadAllText(logFile).Contains("/before"), "the first line");

        File.Move(logFile, logFile + ".1");
        proxy.Signal("USR1");
        await proxy.WaitForLineAsync("access log reopened");
        await Client.GetStringAsync(url + "/after");
        await Poll.UntilAsync(() => File.Exists(logFile) && File.ReadAllText(logFile).Contains("/after"), "the line in the reopened file");
        Assert.DoesNotContain("/after", File.ReadAllText(logFile + ".1"));
        Assert.False(proxy.HasExited);
    }

    /// <summary>Times are seconds with three decimals, as nginx writes them, however long and however short.</summary>
    [Theory]
    [InlineData(0, "0.000")]
    [InlineData(2, "0.002")]
    [InlineData(1234.4, "1.234")]
    [InlineData(59999.6, "60.000")]
    [InlineData(3_600_000.0, "3600.000")]
    public void RequestTime_IsSecondsWithMilliseconds(double milliseconds, string expected)
    {
        var format = AccessLogFormat.Parse("$request_time", out _)!;
        var line = AccessLogLine.Format(format, new DefaultHttpContext(), TimeSpan.FromMilliseconds(milliseconds));
        Assert.Equal(expected + "\n", System.Text.Encoding.ASCII.GetString(line));
    }

    /// <summary>Formatting a line builds no strings and allocates nothing (the thread's scratch buffer): the log's cost per request stays small.</summary>
    [Fact]
    public void FormattingALine_AllocatesNothing()
    {
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = System.Net.IPAddress.Loopback;
        context.Request.Method = "GET";
        context.Request.Path = "/some/page";
        context.Request.QueryString = new QueryString("?x=1");
        context.Request.Protocol = "HTTP/1.1";
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()!.RawTarget = "/some/page?x=1"; // Kestrel sets it
        context.Request.Headers.UserAgent = "curl/8.0";
        context.Response.StatusCode = 200;
        context.Response.ContentLength = 1024;
        var format = AccessLogFormat.Parse("main", out _)!;
        void Once()
        {
            _ = AccessLogLine.Format(format, context, TimeSpan.FromMilliseconds(2));
        }
        for (int i = 0; i < 100; i++) Once();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) Once();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}

/// <summary>
/// The writer's buffer is bounded: when the background loop falls behind, lines are dropped and counted, never waited
/// for; and a logged line costs the request thread no allocation, formatting and handing over included.
/// </summary>
public class AccessLogQueueTests
{
    [Fact]
    public void AFullBuffer_DropsLines_AndCountsThem()
    {
        using var metrics = new ProxyMetrics();
        var options = new ZcProxy.Core.Configuration.RuntimeOptions(new ZcProxy.Core.Configuration.ZcProxyOptions());
        // Not started: nothing drains the buffer, as when the disk stalls.
        var writer = new AccessLogWriter(options, metrics, Microsoft.Extensions.Logging.Abstractions.NullLogger<AccessLogWriter>.Instance);
        int fit = AccessLogWriter.BufferSize / "line\n".Length;
        for (int i = 0; i < fit + 7; i++) writer.Write("line");
        Assert.Equal(7, metrics.CounterValue("zcproxy_access_log_dropped_total"));
    }

    /// <summary>
    /// Many lines through the running writer: the request thread allocates nothing for them (before, each line rented a
    /// pooled array that the writer thread returned, so the request threads' pool ran dry and allocated), and every line
    /// reaches the file, in order.
    /// </summary>
    [Fact]
    public async Task LoggedLines_AllocateNothingOnTheRequestThread_AndAllReachTheFile()
    {
        using var dir = new ConfigDirectory();
        var file = Path.Combine(dir.Root, "access.log");
        using var metrics = new ProxyMetrics();
        var options = new ZcProxy.Core.Configuration.RuntimeOptions(new ZcProxy.Core.Configuration.ZcProxyOptions
        {
            AccessLog = new ZcProxy.Core.Configuration.AccessLogOptions { Path = file, Format = "$request_uri $status" },
        });
        using var writer = new AccessLogWriter(options, metrics, Microsoft.Extensions.Logging.Abstractions.NullLogger<AccessLogWriter>.Instance);
        await writer.StartAsync(CancellationToken.None);
        var context = new DefaultHttpContext();
        context.Response.StatusCode = 200;
        var request = context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()!;
        request.RawTarget = "/warm";
        for (int i = 0; i < 100; i++) writer.Write(context, TimeSpan.Zero);

        const int Lines = 20_000;
        request.RawTarget = "/line";
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Lines; i++) writer.Write(context, TimeSpan.Zero);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        await Poll.UntilAsync(() => File.Exists(file) && File.ReadLines(file).Count() == 100 + Lines, "every line in the file");
        await writer.StopAsync(CancellationToken.None);
        // Nothing per line: under 1 byte per line leaves room for one-off runtime allocations (a contended lock's
        // first wait allocated 384 B once in a Debug build), while the old per-line rent took 11 MB for these lines.
        Assert.True(allocated < Lines, $"{allocated} bytes allocated for {Lines} lines");
        Assert.Equal(0, metrics.CounterValue("zcproxy_access_log_dropped_total"));
        Assert.All(File.ReadLines(file).Skip(100), line => Assert.Equal("/line 200", line));
    }
}

/// <summary>The .deb's logging: the packaged config logs to a file (not the journal) that the unit may write and logrotate rotates.</summary>
public class PackagedAccessLogTests
{
    [Fact]
    public async Task PackagedConfig_LogsToAFile_TheUnitCanWrite_AndLogrotateReopensIt()
    {
        var config = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(Repository.Root, "packaging/etc/zcproxy.json")),
            documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true })!;
        var path = config["AccessLog"]!["Path"]!.GetValue<string>();
        Assert.StartsWith("/var/log/zcproxy/", path);
        Assert.NotNull(AccessLogFormat.Parse(config["AccessLog"]!["Format"]!.GetValue<string>(), out _));

        var unit = await File.ReadAllLinesAsync(Path.Combine(Repository.Root, "ZcProxy.service"));
        Assert.Contains("LogsDirectory=zcproxy", unit); // /var/log/zcproxy, writable under ProtectSystem=strict

        var logrotate = await File.ReadAllTextAsync(Path.Combine(Repository.Root, "packaging/etc/logrotate.d/zcproxy"));
        Assert.Contains("/var/log/zcproxy/*.log {", logrotate);
        Assert.Contains("systemctl kill --signal=SIGUSR1 zcproxy.service", logrotate);
        Assert.Contains("install -m 644 \"$repo/packaging/etc/logrotate.d/zcproxy\" \"$root/etc/logrotate.d/zcproxy\"",
            await File.ReadAllTextAsync(Path.Combine(Repository.Root, "packaging/build-deb.sh")));
    }
}
