using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting.Systemd;

/// <summary>
/// Plays systemd's side of sd_notify: a unix datagram socket (what NOTIFY_SOCKET names) that records every message
/// with the moment it arrived (stamped by the receive loop, so a slow test thread does not skew cadence counts).
/// </summary>
public sealed class NotifySocketListener : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly ConcurrentQueue<(long Timestamp, string Text)> _messages = new();
    private readonly Thread _receiver;

    public NotifySocketListener(bool useAbstractName = false)
    {
        var name = "zcproxy-notify-" + Guid.NewGuid().ToString("N")[..12];
        if (useAbstractName)
        {
            Address = "@" + name;
            _socket.Bind(new UnixDomainSocketEndPoint("\0" + name));
        }
        else
        {
            Address = Path.Combine(Path.GetTempPath(), name + ".sock");
            _socket.Bind(new UnixDomainSocketEndPoint(Address));
        }
        _receiver = new Thread(Receive) { IsBackground = true, Name = "notify listener" };
        _receiver.Start();
    }

    /// <summary>The value for NOTIFY_SOCKET.</summary>
    public string Address { get; }

    public IReadOnlyList<(long Timestamp, string Text)> Messages => _messages.ToList();

    public IReadOnlyList<string> Texts => _messages.Select(m => m.Text).ToList();

    /// <summary>Waits until the n-th message (1-based, in arrival order) containing the line exists; returns its index.</summary>
    public async Task<int> WaitForAsync(string line, int occurrence = 1, TimeSpan? timeout = null)
    {
        int index = -1;
        try
        {
            await Poll.UntilAsync(() =>
            {
                var texts = Texts;
                int seen = 0;
                for (int i = 0; i < texts.Count; i++)
                    if (HasLine(texts[i], line) && ++seen == occurrence) { index = i; return true; }
                return false;
            }, $"sd_notify message #{occurrence} with '{line}'", timeout ?? TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException e)
        {
            // What had arrived when the wait gave up (a message made when the wait starts would say what was there then).
            throw new TimeoutException($"{e.Message} (got: {string.Join(" | ", Texts.Where(t => t != "WATCHDOG=1")).ReplaceLineEndings("\\n")})", e);
        }
        return index;
    }

    public static bool HasLine(string message, string line) => message.Split('\n').Contains(line);

    public static string? Value(string message, string key) =>
        message.Split('\n').FirstOrDefault(l => l.StartsWith(key + "="))?[(key.Length + 1)..];

    private void Receive()
    {
        var buffer = new byte[4096];
        while (true)
        {
            int n;
            try { n = _socket.Receive(buffer); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { return; }
            _messages.Enqueue((Stopwatch.GetTimestamp(), Encoding.UTF8.GetString(buffer, 0, n)));
        }
    }

    public void Dispose()
    {
        _socket.Dispose();
        if (!Address.StartsWith('@')) File.Delete(Address);
    }
}

/// <summary>
/// An ISystemdNotifier aimed at one listener: Microsoft's SystemdNotifier reads NOTIFY_SOCKET from the process
/// environment, which tests running in parallel cannot set. (The executable's own notifier is exercised end to end by
/// SdNotifyTests.)
/// </summary>
public sealed class DatagramNotifier(string address) : Microsoft.Extensions.Hosting.Systemd.ISystemdNotifier
{
    public bool IsEnabled => true;

    public void Notify(Microsoft.Extensions.Hosting.Systemd.ServiceState state)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        var name = address.StartsWith('@') ? "\0" + address[1..] : address;
        socket.SendTo(Encoding.UTF8.GetBytes(state.ToString()), new UnixDomainSocketEndPoint(name));
    }
}
