using System.Net;
using System.Net.Sockets;

namespace ZcProxy.Tests.Infrastructure;

/// <summary>A connected loopback TCP pair for tests that drive the proxy's socket code directly.</summary>
public static class LoopbackPair
{
    /// <summary>(the outside peer, the proxy's end, non-blocking as the proxy's sockets are).</summary>
    public static async Task<(Socket Peer, Socket Proxy)> ConnectAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await peer.ConnectAsync(listener.LocalEndPoint!);
        var proxy = await listener.AcceptAsync();
        proxy.Blocking = false;
        return (peer, proxy);
    }
}
