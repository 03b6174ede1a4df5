using System.Net;
using System.Net.Sockets;

namespace ZcProxy.Tests.Balancing;

/// <summary>An origin that has "died mid-flight": it accepts connections and resets them without answering.</summary>
internal sealed class ResettingOrigin : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _accepted;

    public ResettingOrigin()
    {
        _listener.Start();
        _loop = Task.Run(AcceptLoopAsync);
    }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/";
    public int Accepted => Volatile.Read(ref _accepted);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try { socket = await _listener.AcceptSocketAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
            Interlocked.Increment(ref _accepted);
            try
            {
                // Read (part of) the request so that it was really sent, then reset (SO_LINGER 0 → RST).
                var buffer = new byte[4096];
                using var read = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await socket.ReceiveAsync(buffer, SocketFlags.None, read.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException) { }
            socket.LingerState = new LingerOption(true, 0);
            socket.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _loop;
    }
}
