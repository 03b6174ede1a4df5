using System.Text.RegularExpressions;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Diagnostics;

public class AccessLogTests
{
    [Fact]
    public async Task AccessLog_WritesCombinedFormatWithUpstreamAndTimes()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        var logFile = Path.Combine(dir.Root, "access.log");
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }
            """, $$"""
            "AccessLog": { "Path": "{{logFile}}" }
            """);
        await using (var proxy = await InProcessProxy.StartAsync(dir.MainFile))
        {
            using var client = new HttpClient();
            using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url + "/page?x=1");
            request.Headers.UserAgent.ParseAdd("tester/1.0");
            request.Headers.Referrer = new Uri("http://ref.example/");
            (await client.SendAsync(request)).EnsureSuccessStatusCode();
            await Poll.UntilAsync(() => File.Exists(logFile) && File.ReadAllText(logFile).Contains("/page"), "the access-log line");
        }

        var line = File.ReadAllLines(logFile).Single(l => l.Contains("/page"));
        Assert.Matches(new Regex(
            @"^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] ""GET /page\?x=1 HTTP/1\.1"" 200 \d+ ""http://ref\.example/"" ""tester/1\.0"" " +
            $@"upstream={Regex.Escape(a.Url)}/? rt=\d+\.\d{{3}} urt=\d+\.\d{{3}} cache=-$"), line);
    }

    /// <summary>Header values are bytes: like nginx, the log shows those outside printable ASCII (and quotes) as \xHH.</summary>
    [Fact]
    public async Task AccessLog_EscapesHeaderBytesOutsidePrintableAscii()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        var logFile = Path.Combine(dir.Root, "access.log");
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }
            """, $$"""
            "AccessLog": { "Path": "{{logFile}}" }
            """);
        await using (var proxy = await InProcessProxy.StartAsync(dir.MainFile))
        {
            var uri = new Uri(proxy.Url);
            using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
            await socket.ConnectAsync(uri.Host, uri.Port);
            // "café" in UTF-8, one char per byte.
            await socket.SendAsync(System.Text.Encoding.Latin1.GetBytes("GET /agent HTTP/1.1\r\nHost: x\r\nUser-Agent: caf\u00C3\u00A9 \"q\"\r\n\r\n"));
            Assert.Equal(200, (await new ZcProxy.Tests.Forwarding.RawReader(socket).ReadResponseAsync()).Status);
            await Poll.UntilAsync(() => File.Exists(logFile) && File.ReadAllText(logFile).Contains("/agent"), "the access-log line");
        }

        var line = File.ReadAllLines(logFile).Single(l => l.Contains("/agent"));
        Assert.Contains("\"caf\\xC3\\xA9 \\x22q\\x22\"", line);
    }
}
