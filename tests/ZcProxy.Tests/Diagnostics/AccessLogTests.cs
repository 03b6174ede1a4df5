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
}
