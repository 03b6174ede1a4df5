using System.Net;
using System.Net.Sockets;

namespace ZcProxy.Tests.Balancing;

/// <summary>
/// An address whose connects hang (like a firewalled or overloaded host): a listener with backlog 0 that never
/// accepts, its accept queue filled by one connection, so Linux drops further SYNs and connect() waits.
/// </summary>
internal sealed class BlackholeOrigin : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly List<Socket> _fillers = [];

    public BlackholeOrigin()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(0);
        var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        filler.Connect(_listener.LocalEndPoint!);
        _fillers.Add(filler);
    }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndPoint!).Port}/";

    /// <summary>True when a connect does not complete within the wait (the precondition of the tests using this).</summary>
    public async Task<bool> ConnectHangsAsync(TimeSpan wait)
    {
        var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _fillers.Add(probe);
        using var cancel = new CancellationTokenSource(wait);
        try
        {
            await probe.ConnectAsync(_listener.LocalEndPoint!, cancel.Token);
            return false;
        }
        catch (OperationCanceledException)
        {
            return true;
        }
    }

    public void Dispose()
    {
        foreach (var s in _fillers) s.Dispose();
        _listener.Dispose();
    }
}
