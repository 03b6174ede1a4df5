using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Hosting.Systemd;

/// <summary>
/// Listening sockets passed by systemd (sd_listen_fds(3): fds 3.. with LISTEN_FDS and LISTEN_PID). Each one is
/// matched to the `Listen`/`Admin` entry with the same address and port, so a .socket unit can hold the ports
/// (privileged ones too) while the service restarts; Kestrel then serves the inherited fd (ListenHandle, as its
/// UseSystemd() does) instead of binding. Sockets no entry claims are still served as proxy listeners: systemd
/// accepted connections on them in our name.
/// </summary>
internal sealed class SocketActivation
{
    public const int FirstFd = 3; // SD_LISTEN_FDS_START

    private readonly List<InheritedSocket> _unclaimed;

    private SocketActivation(List<InheritedSocket> sockets) => _unclaimed = sockets;

    public sealed record InheritedSocket(int Fd, EndPoint? LocalEndPoint);

    /// <summary>Which fd serves which configured URL (or why none), for the startup log.</summary>
    public List<(InheritedSocket Socket, string Use)> Assignments { get; } = [];

    public static SocketActivation None { get; } = new([]);

    /// <summary>
    /// Reads and then unsets LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES, as sd_listen_fds(1) does, so nothing we might
    /// start later believes the fds are meant for it. LISTEN_PID must be our pid: the variables may have been
    /// inherited from a parent that was itself socket-activated.
    /// </summary>
    public static SocketActivation FromEnvironment()
    {
        var pid = Environment.GetEnvironmentVariable("LISTEN_PID");
        var fds = Environment.GetEnvironmentVariable("LISTEN_FDS");
        Environment.SetEnvironmentVariable("LISTEN_PID", null);
        Environment.SetEnvironmentVariable("LISTEN_FDS", null);
        Environment.SetEnvironmentVariable("LISTEN_FDNAMES", null);
        if (pid != Environment.ProcessId.ToString() || !int.TryParse(fds, out var count) || count <= 0) return None;
        var sockets = new List<InheritedSocket>(count);
        for (var fd = FirstFd; fd < FirstFd + count; fd++) sockets.Add(new InheritedSocket(fd, LocalEndPointOf(fd)));
        return new SocketActivation(sockets);
    }

    /// <summary>Takes the inherited socket bound to this URL's address and port, if systemd passed one.</summary>
    public bool TryClaim(ListenUrl url, string rawUrl, out InheritedSocket socket)
    {
        lock (_unclaimed)
        {
            var match = _unclaimed.FirstOrDefault(s => s.LocalEndPoint is IPEndPoint ip && Matches(url, ip));
            socket = match!;
            if (match is null) return false;
            _unclaimed.Remove(match);
            Assignments.Add((match, rawUrl));
            return true;
        }
    }

    /// <summary>
    /// Serves the IP sockets no entry claimed as proxy listeners (systemd accepts connections on them in our name);
    /// call after every entry had its chance. Other fds (unix sockets, FIFOs) are left alone and reported.
    /// </summary>
    public void ListenUnclaimed(KestrelServerOptions kestrel, Action<ListenOptions, int> configure)
    {
        lock (_unclaimed)
        {
            foreach (var socket in _unclaimed)
            {
                var served = socket.LocalEndPoint is IPEndPoint;
                if (served) kestrel.ListenHandle((ulong)socket.Fd, lo => configure(lo, socket.Fd));
                Assignments.Add((socket, served ? UnmatchedButServed : Ignored));
            }
            _unclaimed.Clear();
        }
    }

    public const string UnmatchedButServed = "(no Listen entry matches: served as a proxy listener)";
    public const string Ignored = "(not an IP socket: ignored)";

    internal static bool Matches(ListenUrl url, IPEndPoint bound)
    {
        if (url.Port != bound.Port) return false;
        var address = bound.Address.IsIPv4MappedToIPv6 ? bound.Address.MapToIPv4() : bound.Address;
        if (url.IsLocalhost) return IPAddress.IsLoopback(address);
        // "*" is a wildcard either way: systemd's ListenStream=8080 binds [::] (dual-stack), a config may say 0.0.0.0.
        var wanted = url.Address ?? IPAddress.Loopback;
        if (wanted.Equals(IPAddress.Any) || wanted.Equals(IPAddress.IPv6Any))
            return address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);
        return wanted.Equals(address);
    }

    /// <summary>getsockname() through a Socket that borrows the fd without owning it (so disposing it does not close the fd).</summary>
    private static EndPoint? LocalEndPointOf(int fd)
    {
        try
        {
            using var borrowed = new Socket(new SafeSocketHandle(fd, ownsHandle: false));
            return borrowed.LocalEndPoint;
        }
        catch (Exception e) when (e is SocketException or ArgumentException or NotSupportedException)
        {
            return null; // not a socket we can serve (e.g. a FIFO); it stays unclaimed and Kestrel will report it
        }
    }
}
