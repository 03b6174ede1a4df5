using System.Net;
using System.Net.Sockets;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// A test TCP server standing in for an upstream: each connection gets <c>send</c> pattern bytes, then the
/// server closes (FIN), resets (RST) or stays open, as asked. <see cref="ConnectAsync"/> returns the upstream
/// side's socket, the one the proxy would splice from.
/// </summary>
public sealed class SocketSource : IAsyncDisposable
{
    public enum End { Close, Reset, StayOpen }

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly List<Task> _feeders = [];
    private readonly CancellationTokenSource _stop = new();

    public SocketSource() => _listener.Start();

    /// <summary>When set, every feeder sends this many bytes, then waits for <see cref="Release"/> before the rest.</summary>
    public long? HoldAfter { get; set; }
    /// <summary>When set, sent first, in one send with the body bytes up to <see cref="HoldAfter"/> (a response head and its body's start).</summary>
    public string? Head { get; set; }
    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task<Socket> ConnectAsync(long send, End end)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync((IPEndPoint)_listener.LocalEndpoint);
        var server = await _listener.AcceptSocketAsync();
        lock (_feeders) _feeders.Add(FeedAsync(server, send, end));
        return client;
    }

    private async Task FeedAsync(Socket server, long send, End end)
    {
        try
        {
            var buffer = new byte[256 * 1024];
            long? holdAt = HoldAfter;
            long done = 0;
            if (Head is { } head)
            {
                int headLength = System.Text.Encoding.ASCII.GetBytes(head, buffer);
                done = Math.Min(send, holdAt ?? 0);
                BodyPattern.Fill(buffer.AsSpan(headLength, (int)done), 0);
                await server.SendAsync(buffer.AsMemory(0, headLength + (int)done), SocketFlags.None, _stop.Token);
            }
            while (done < send)
            {
                if (done == holdAt) await Release.Task.WaitAsync(_stop.Token);
                int n = (int)Math.Min(buffer.Length, Math.Min(send, done < holdAt ? holdAt.Value : send) - done);
                BodyPattern.Fill(buffer.AsSpan(0, n), done);
                await server.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
                done += n;
            }
            if (end == End.StayOpen) await Task.Delay(Timeout.Infinite, _stop.Token);
            if (end == End.Reset) server.LingerState = new LingerOption(true, 0);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException) { }
        finally { server.Dispose(); }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        Task[] feeders;
        lock (_feeders) feeders = [.. _feeders];
        await Task.WhenAll(feeders);
    }
}
