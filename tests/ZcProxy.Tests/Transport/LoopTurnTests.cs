using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// A long body move on an event loop gives up the loop after each <see cref="LoopTurn.Bytes"/> it sends: a connection of
/// the same loop that became ready meanwhile runs before the move goes on, not after it ends (pollution benchmark:
/// a 64 MiB hit sent in one 60 ms turn held the small hits of its loop behind it).
/// </summary>
public sealed class LoopTurnTests
{
    private const int Slices = 8;

    [Fact]
    public async Task LongMove_YieldsEachTurn_SoAConnectionReadyMeanwhileRunsBeforeItEnds()
    {
        using var loop = new EventLoop(0);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var a = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await a.ConnectAsync(listener.LocalEndPoint!);
        using var b = await listener.AcceptAsync();
        var socket = loop.Register(a.SafeHandle);
        await Poll.UntilAsync(() => socket.WriteSequence > 0, "the registration reports the socket writable");

        var order = new List<string>(); // touched on the loop thread only
        var small = ReadyThenRecordAsync(socket, socket.ReadSequence, order);
        var moved = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.Post(_ => _ = MoveAsync(b, a, order, moved), null);
        await moved.Task.WaitAsync(TimeSpan.FromSeconds(20));
        await small.WaitAsync(TimeSpan.FromSeconds(20));

        int smallAt = order.IndexOf("small");
        Assert.InRange(smallAt, 0, order.Count - 1);
        Assert.True(smallAt < order.IndexOf("moved"), string.Join(",", order));
        Assert.Equal(Slices + 2, order.Count);
        loop.Unregister(socket, fdStaysOpen: true);
    }

    /// <summary>The small connection: waits for its byte, then records that it ran (on the loop thread).</summary>
    private static async Task ReadyThenRecordAsync(LoopSocket socket, int seen, List<string> order)
    {
        SynchronizationContext.SetSynchronizationContext(null); // the loop completes the wait; run on there as the proxy does
        Assert.True(await socket.WaitReadableAsync(seen));
        order.Add("small");
    }

    /// <summary>
    /// The long move, on the loop thread: first makes the other connection readable (its byte is in the socket before the
    /// loop could look), then "sends" <see cref="Slices"/> turns' worth, yielding as a body move does.
    /// </summary>
    private static async Task MoveAsync(Socket peer, Socket smallEnd, List<string> order, TaskCompletionSource moved)
    {
        try
        {
            peer.Send(new byte[] { 1 });
            var waited = Stopwatch.StartNew();
            while (smallEnd.Available == 0 && waited.Elapsed < TimeSpan.FromSeconds(10)) Thread.Yield();
            var turn = new LoopTurn();
            for (int i = 0; i < Slices; i++)
            {
                order.Add($"slice {i}");
                if (turn.Spend(LoopTurn.Bytes)) await turn.YieldAsync();
            }
            order.Add("moved");
            moved.SetResult();
        }
        catch (Exception e) { moved.SetException(e); }
    }
}
