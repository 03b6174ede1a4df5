using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace ZcProxy.Hosting.Systemd;

/// <summary>
/// Log lines for journald (stdout is a journal stream when JOURNAL_STREAM is set): each line starts with its syslog
/// priority, "&lt;6&gt;" for information, so `journalctl -p warning` filters properly; no timestamp (journald stamps
/// every line itself) and no colours. Exception lines carry the same prefix so a stack trace stays one priority.
/// </summary>
internal sealed class JournalConsoleFormatter() : ConsoleFormatter(FormatterName)
{
    public const string FormatterName = "journal";
    public const string EnvironmentVariable = "JOURNAL_STREAM";

    /// <summary>
    /// True when systemd connected our output to the journal. (systemd also suggests comparing the variable's
    /// device:inode with stderr's; a service's stdout and stderr are the same journal stream, so the variable suffices.)
    /// </summary>
    public static bool IsJournalStream => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(EnvironmentVariable));

    /// <summary>syslog(3) priorities: emerg 0 ... debug 7.</summary>
    public static int SyslogPriority(LogLevel level) => level switch
    {
        LogLevel.Critical => 2,
        LogLevel.Error => 3,
        LogLevel.Warning => 4,
        LogLevel.Information => 6,
        _ => 7,
    };

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        var message = logEntry.Formatter(logEntry.State, logEntry.Exception);
        if (string.IsNullOrEmpty(message) && logEntry.Exception is null) return;
        var prefix = $"<{SyslogPriority(logEntry.LogLevel)}>";
        // One journal entry per line: a multi-line message must not lose its priority on its second line.
        foreach (var line in message.ReplaceLineEndings("\n").Split('\n'))
            textWriter.Write($"{prefix}{logEntry.Category}: {line}\n");
        if (logEntry.Exception is { } exception)
            foreach (var line in exception.ToString().ReplaceLineEndings("\n").Split('\n'))
                textWriter.Write($"{prefix}{line}\n");
    }
}
