using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging.Console;

namespace ZcProxy.Hosting.Systemd;

/// <summary>
/// The one registration place for running under systemd. Everything is driven by the variables systemd sets
/// (NOTIFY_SOCKET, WATCHDOG_USEC, LISTEN_FDS, JOURNAL_STREAM); without them the proxy behaves exactly as before.
/// Microsoft.Extensions.Hosting.Systemd's AddSystemd() is not used whole: its lifetime would send READY=1 before the
/// first configuration's STATUS and knows no reloads, and it picks the log format by "is my parent systemd?" where
/// JOURNAL_STREAM says whether stdout really is the journal (StandardOutput=file: is not).
/// </summary>
internal static class SystemdHostingExtensions
{
    public const string JournalStreamVariable = "JOURNAL_STREAM";

    /// <summary>
    /// True when systemd connected our output to the journal. (systemd also suggests comparing the variable's
    /// device:inode with stderr's; a service's stdout and stderr are the same journal stream, so the variable suffices.)
    /// </summary>
    public static bool IsJournalStream => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(JournalStreamVariable));

    /// <summary>Adds journal log lines, sd_notify state and the watchdog; returns the socket-activated listeners to serve.</summary>
    public static SocketActivation AddSystemdIntegration(this WebApplicationBuilder builder)
    {
        if (IsJournalStream) UseJournalFormat(builder.Logging);

        var activation = SocketActivation.FromEnvironment();
        builder.Services.AddSingleton(activation);
        builder.Services.AddSingleton<ActiveConnections>();
        builder.Services.TryAddSingleton<ISystemdNotifier, Microsoft.Extensions.Hosting.Systemd.SystemdNotifier>();
        builder.Services.AddHostedService<SystemdService>();
        return activation;
    }

    /// <summary>
    /// The framework's systemd console format: "&lt;6&gt;Category[EventId] message", the syslog priority first so
    /// `journalctl -p warning` filters; no timestamp (journald stamps every entry) and no colours; a multi-line message
    /// or stack trace stays one journal entry (its line breaks become spaces) with its priority. Replaces the simple
    /// console format chosen in ProxyHost.ConfigureLogging (the last FormatterName wins).
    /// </summary>
    public static void UseJournalFormat(ILoggingBuilder logging) => logging.AddSystemdConsole();
}
