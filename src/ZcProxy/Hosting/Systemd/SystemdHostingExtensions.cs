using Microsoft.Extensions.Logging.Console;

namespace ZcProxy.Hosting.Systemd;

/// <summary>
/// The one registration place for running under systemd. Everything is driven by the variables systemd sets
/// (NOTIFY_SOCKET, WATCHDOG_USEC, LISTEN_FDS, JOURNAL_STREAM); without them the proxy behaves exactly as before.
/// </summary>
internal static class SystemdHostingExtensions
{
    /// <summary>Adds journal log lines, sd_notify state and the watchdog; returns the socket-activated listeners to serve.</summary>
    public static SocketActivation AddSystemdIntegration(this WebApplicationBuilder builder)
    {
        if (JournalConsoleFormatter.IsJournalStream)
        {
            // Replaces the simple console formatter chosen in ProxyHost.ConfigureLogging (the last FormatterName wins).
            builder.Logging.AddConsole(o => o.FormatterName = JournalConsoleFormatter.FormatterName);
            builder.Logging.AddConsoleFormatter<JournalConsoleFormatter, ConsoleFormatterOptions>();
        }

        var activation = SocketActivation.FromEnvironment();
        builder.Services.AddSingleton(activation);
        builder.Services.AddSingleton<ActiveConnections>();
        builder.Services.AddHostedService<SystemdService>();
        return activation;
    }
}
