using System.Net;
using System.Net.Sockets;

namespace ZcProxy.Tests.Infrastructure;

/// <summary>
/// A 127.0.0.1 port held for a server that a test starts (or restarts) on it later. A port taken from the OS and
/// closed again is free for anyone: another test running in parallel may get it for its own origin or proxy, and then
/// the requests meant for "nothing listening here" reach that test's server (it counts one request too many) while
/// this test's server finds the port busy. The reservation is a socket bound with SO_REUSEADDR that never listens:
/// Linux hands the port to no bind(0) and no connect(2) while it exists, refuses connections to it (nothing listens),
/// and still lets a server that sets SO_REUSEADDR (.NET's sockets, Kestrel, Go's net.Listen) bind and listen on it.
/// Dispose it after the last server on the port has stopped.
/// </summary>
public sealed class ReservedPort : IDisposable
{
    private readonly Socket _holder;

    public ReservedPort()
    {
        _holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _holder.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Port = ((IPEndPoint)_holder.LocalEndPoint!).Port;
    }

    public int Port { get; }

    public void Dispose() => _holder.Dispose();
}
