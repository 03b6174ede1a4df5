using System.Net.Sockets;
using System.Text;

namespace ZcProxy.Hosting.Systemd;

/// <summary>
/// The sd_notify(3) protocol: newline-separated "KEY=VALUE" assignments in one datagram to the unix socket named by
/// NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). Microsoft.Extensions.Hosting.Systemd is not
/// available here, and the protocol is this small. A failed send is logged once and never stops the proxy:
/// losing systemd's view of the service is better than losing the service.
/// </summary>
internal sealed partial class SdNotifySocket : IDisposable
{
    public const string EnvironmentVariable = "NOTIFY_SOCKET";

    private readonly Socket _socket;
    private readonly UnixDomainSocketEndPoint _target;
    private readonly ILogger _logger;
    private readonly object _sendLock = new();
    private bool _warned;

    private SdNotifySocket(string address, UnixDomainSocketEndPoint target, ILogger logger)
    {
        Address = address;
        _target = target;
        _logger = logger;
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>The NOTIFY_SOCKET value, as systemd gave it.</summary>
    public string Address { get; }

    /// <summary>Null when the process was not started by systemd with notify access (NOTIFY_SOCKET unset or empty).</summary>
    public static SdNotifySocket? FromEnvironment(ILogger logger)
    {
        var address = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrEmpty(address) ? null : Create(address, logger);
    }

    /// <summary>A notifier for a NOTIFY_SOCKET value; null (and a warning) for an address kind we don't speak.</summary>
    public static SdNotifySocket? Create(string address, ILogger logger)
    {
        if (address[0] is not ('/' or '@'))
        {
            // systemd also knows vsock addresses (vsock:CID:PORT) for VMs; edge nodes don't use them.
            LogUnsupportedAddress(logger, address);
            return null;
        }
        // .NET names an abstract socket with a leading NUL, which is what '@' stands for.
        var target = new UnixDomainSocketEndPoint(address[0] == '@' ? "\0" + address[1..] : address);
        return new SdNotifySocket(address, target, logger);
    }

    /// <summary>Sends one state message; false (and one logged warning per process) when systemd cannot be reached.</summary>
    public bool Send(string state)
    {
        var datagram = Encoding.UTF8.GetBytes(state);
        lock (_sendLock)
        {
            try
            {
                _socket.SendTo(datagram, SocketFlags.None, _target);
                return true;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (!_warned)
                {
                    _warned = true;
                    LogSendFailed(_logger, Address, e.Message);
                }
                return false;
            }
        }
    }

    public void Dispose() => _socket.Dispose();

    [LoggerMessage(EventId = 40, Level = LogLevel.Warning, Message = "sd_notify: cannot reach NOTIFY_SOCKET={Address} ({Error}); the proxy keeps running, but systemd will not see its state")]
    private static partial void LogSendFailed(ILogger logger, string address, string error);

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning, Message = "sd_notify: NOTIFY_SOCKET={Address} is not a unix socket path or @abstract name; notifications are off")]
    private static partial void LogUnsupportedAddress(ILogger logger, string address);
}
