using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using ZcProxy.Hosting.Systemd;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting.Systemd;

/// <summary>Log lines when stdout is the journal: the framework's systemd console format, as ZcProxy registers it.</summary>
public class JournalFormatTests
{
    [Fact]
    public async Task UnderJournalStream_EveryLineHasSyslogPriority_AndNoColourOrTimestamp()
    {
        using var dir = new ConfigDirectory();
        // A destination nobody listens on, and an unknown route file: a warning-level line is logged at reload.
        dir.WriteMain("""{ "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }""");
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], new Dictionary<string, string> { ["JOURNAL_STREAM"] = "8:12345" });

        await proxy.WaitForLineAsync(@"^<6>ZcProxy\.Hosting\[\d+\] proxy listening on http://");
        dir.WriteAtomically("routes.d/bad.json", """{ "ReverseProxy": { "Routes": { "b": { "ClusterId": "nope", "Match": { "Path": "/b" } } } } }""");
        await proxy.WaitForLineAsync(@"^<3>ZcProxy\.Core\.Configuration\.FileConfigProvider\[\d+\] configuration rejected");

        var lines = proxy.Lines.ToList();
        Assert.All(lines, l => Assert.Matches(@"^<[0-7]>", l));
        Assert.DoesNotContain(lines, l => l.Contains('\u001b'));
        Assert.DoesNotContain(lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"));
    }

    [Fact]
    public void MultiLineMessageAndStackTrace_StayOneJournalEntry_WithTheirPriority()
    {
        Exception exception;
        try { throw new InvalidOperationException("inner\nsecond line"); }
        catch (InvalidOperationException e) { exception = e; }

        var written = Format(LogLevel.Error, "first line\nsecond line\r\nthird line", exception);

        var line = Assert.Single(written.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("<3>Test.Category[7] first line second line", line);
        Assert.Contains("third line", line);
        Assert.Contains("System.InvalidOperationException: inner second line", line);
        Assert.Contains(" at ZcProxy.Tests.Hosting.Systemd.JournalFormatTests", line);
    }

    [Theory]
    [InlineData(LogLevel.Critical, "<2>")]
    [InlineData(LogLevel.Error, "<3>")]
    [InlineData(LogLevel.Warning, "<4>")]
    [InlineData(LogLevel.Information, "<6>")]
    [InlineData(LogLevel.Debug, "<7>")]
    [InlineData(LogLevel.Trace, "<7>")]
    public void Priority_FollowsSyslogLevels(LogLevel level, string prefix) =>
        Assert.StartsWith(prefix + "Test.Category[7] hello", Format(level, "hello", exception: null));

    /// <summary>One entry through the console formatter that ZcProxy's journal registration selects.</summary>
    private static string Format(LogLevel level, string message, Exception? exception)
    {
        var services = new ServiceCollection();
        services.AddLogging(logging =>
        {
            logging.AddSimpleConsole(); // what ProxyHost configures first; the journal format must win over it
            SystemdHostingExtensions.UseJournalFormat(logging);
        });
        using var provider = services.BuildServiceProvider();
        var chosen = provider.GetRequiredService<IOptionsMonitor<ConsoleLoggerOptions>>().CurrentValue.FormatterName;
        Assert.Equal(ConsoleFormatterNames.Systemd, chosen);
        var formatter = provider.GetServices<ConsoleFormatter>().Single(f => f.Name == chosen);
        var writer = new StringWriter();
        formatter.Write(new LogEntry<string>(level, "Test.Category", new EventId(7), message, exception, (s, _) => s), scopeProvider: null, writer);
        return writer.ToString();
    }
}
