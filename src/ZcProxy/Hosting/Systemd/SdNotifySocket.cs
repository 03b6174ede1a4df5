using System.Net.Sockets;
using Microsoft.Extensions.Hosting.Systemd;

namespace ZcProxy.Hosting.Systemd;

/// <summary>
/// sd_notify(3) messages ("KEY=VALUE" lines: READY=1, RELOADING=1, MONOTONIC_USEC=, WATCHDOG=1, STATUS=,
/// EXTEND_TIMEOUT_USEC=...) sent through Microsoft.Extensions.Hosting.Systemd's notifier, whose ServiceState carries
/// any text. What this adds: a send that fails (systemd gone, a path that is not a socket) is logged once and never
/// stops the proxy, since losing systemd's view of the service is better than losing the service; and addresses the
/// notifier cannot speak are refused with a warning instead of failing on every send.
/// </summary>
internal sealed partial class SdNotifySocket
{
    public const string EnvironmentVariable = "NOTIFY_SOCKET";

    private readonly ISystemdNotifier _notifier;
    private readonly ILogger _logger;
    private int _warned;

    private SdNotifySocket(ISystemdNotifier notifier, string address, ILogger logger)
    {
        _notifier = notifier;
        Address = address;
        _logger = logger;
    }

    /// <summary>The NOTIFY_SOCKET value, as systemd gave it.</summary>
    public string Address { get; }

    /// <summary>
    /// Null when the process was not started by systemd with notify access (NOTIFY_SOCKET, the
    /// <paramref name="address"/> the notifier was built from, unset or empty), or when the address is of a kind the
    /// notifier cannot reach.
    /// </summary>
    public static SdNotifySocket? Create(ISystemdNotifier notifier, string? address, ILogger logger)
    {
        if (!notifier.IsEnabled || string.IsNullOrEmpty(address)) return null;
        if (address[0] is not ('/' or '@'))
        {
            // systemd also knows vsock addresses (vsock:CID:PORT) for VMs; the notifier speaks unix sockets only.
            LogUnsupportedAddress(logger, address);
            return null;
        }
        return new SdNotifySocket(notifier, address, logger);
    }

    /// <summary>Sends one state message; false (and one logged warning per process) when systemd cannot be reached.</summary>
    public bool Send(string state)
    {
        try
        {
            _notifier.Notify(new ServiceState(state));
            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            if (Interlocked.Exchange(ref _warned, 1) == 0) LogSendFailed(_logger, Address, e.Message);
            return false;
        }
    }

    [LoggerMessage(EventId = 40, Level = LogLevel.Warning, Message = "sd_notify: cannot reach NOTIFY_SOCKET={Address} ({Error}); the proxy keeps running, but systemd will not see its state")]
    private static partial void LogSendFailed(ILogger logger, string address, string error);

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning, Message = "sd_notify: NOTIFY_SOCKET={Address} is not a unix socket path or @abstract name; notifications are off")]
    private static partial void LogUnsupportedAddress(ILogger logger, string address);
}
