namespace ZcProxy.Core.Transport.Loops;

/// <summary>
/// A body move's share of one event-loop turn, as nginx's <c>sendfile_max_chunk</c>: on a loop thread a move sends at
/// most <see cref="Bytes"/> before it lets the loop dispatch its other ready connections
/// (<see cref="EventLoop.YieldTurn"/>), then goes on. Without it a move stopped only when the client socket was full,
/// and a loopback client that reads as fast as the loop sends never fills it: a 64 MiB resident hit went out in one
/// loop iteration while the small hits of the same loop waited (pollution benchmark, docs/transport.md). A wait
/// (the client socket full, a read on the pool) ends the turn too. Off the loops nothing is counted or capped.
/// Relays (TCP streams, upgraded connections) count what each direction splices into its sink the same way.
/// </summary>
internal struct LoopTurn
{
    /// <summary>The bytes one move may send in one loop turn (measured: docs/transport.md, "Fair turns").</summary>
    public const long Bytes = 2 << 20;

    private long _sent;

    /// <summary>Tests see the bytes of each turn that ended on a loop thread (a yield, or a wait with bytes sent).</summary>
    internal static Action<long>? Ended;

    /// <summary>Tests see each send that the turn's end cut short: (wanted, allowed).</summary>
    internal static Action<long, long>? Cut;

    /// <summary>The most the next send may move: <paramref name="want"/>, on a loop thread no more than this turn has left.</summary>
    public readonly long Allow(long want)
    {
        if (!EventLoop.OnAnyLoopThread || want <= Bytes - _sent) return want;
        Cut?.Invoke(want, Bytes - _sent);
        return Bytes - _sent;
    }

    /// <summary>
    /// True on a loop thread when this turn has sent bytes and has less than <paramref name="pipeful"/> left. A splice
    /// move that is about to fill an empty pipe then ends the turn first (a little short of its share): the turn's end
    /// would otherwise cut that pipe's drain in two, and the next turn's first fill would top up what was left, i.e. two
    /// splices each way for one pipe's bytes (a 16 MiB body through a 1 MiB pipe: 48 splices instead of 34).
    /// </summary>
    public readonly bool TooShortFor(long pipeful) => EventLoop.OnAnyLoopThread && _sent > 0 && Bytes - _sent < pipeful;

    /// <summary>Counts <paramref name="sent"/> bytes; true when this turn is used up (then <c>await YieldAsync()</c>).</summary>
    public bool Spend(long sent)
    {
        if (!EventLoop.OnAnyLoopThread) return false;
        _sent += sent;
        return _sent >= Bytes;
    }

    /// <summary>Ends this turn: the rest of the move runs after the loop has dispatched what is ready now.</summary>
    public EventLoop.TurnAwaitable YieldAsync()
    {
        End();
        return EventLoop.YieldTurn();
    }

    /// <summary>The move is about to wait (the socket is full, a read is pending): the loop serves others meanwhile, and a new turn follows.</summary>
    public void End()
    {
        if (_sent > 0) Ended?.Invoke(_sent);
        _sent = 0;
    }
}
