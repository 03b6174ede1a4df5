using Microsoft.Extensions.Logging;
using ZcProxy.Hosting.Systemd;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting.Systemd;

public class JournalConsoleFormatterTests
{
    [Fact]
    public async Task UnderJournalStream_EveryLineHasSyslogPriority_AndNoColourOrTimestamp()
    {
        using var dir = new ConfigDirectory();
        // A destination nobody listens on, and an unknown route file: a warning-level line is logged at reload.
        dir.WriteMain("""{ "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }""");
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], new Dictionary<string, string> { ["JOURNAL_STREAM"] = "8:12345" });

        await proxy.WaitForLineAsync(@"^<6>ZcProxy\.Hosting: proxy listening on http://");
        dir.WriteAtomically("routes.d/bad.json", """{ "ReverseProxy": { "Routes": { "b": { "ClusterId": "nope", "Match": { "Path": "/b" } } } } }""");
        await proxy.WaitForLineAsync(@"^<3>ZcProxy\.Core\.Configuration\.FileConfigProvider: configuration rejected");

        var lines = proxy.Lines.ToList();
        Assert.All(lines, l => Assert.Matches(@"^<[0-7]>", l));
        Assert.DoesNotContain(lines, l => l.Contains('\u001b'));
        Assert.DoesNotContain(lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"));
    }

    [Theory]
    [InlineData(LogLevel.Critical, 2)]
    [InlineData(LogLevel.Error, 3)]
    [InlineData(LogLevel.Warning, 4)]
    [InlineData(LogLevel.Information, 6)]
    [InlineData(LogLevel.Debug, 7)]
    [InlineData(LogLevel.Trace, 7)]
    public void SyslogPriority_FollowsSyslogLevels(LogLevel level, int priority) =>
        Assert.Equal(priority, JournalConsoleFormatter.SyslogPriority(level));
}
