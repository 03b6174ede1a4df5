namespace ZcProxy.Core.Transport.Loops;

/// <summary>
/// A deadline kept by an <see cref="EventLoop"/> and checked by the loop itself between its epoll waits (nginx's event
/// timers): no timer and no CancellationTokenSource per use. Its owner (an upstream connection) keeps one and arms it
/// again for each exchange; arming and disarming are O(1). When the time passes before it is disarmed, the loop runs
/// the callback on its own thread.
/// </summary>
internal sealed class LoopDeadline(Action<object?> expired, object? state)
{
    internal readonly Action<object?> Expired = expired;
    internal readonly object? State = state;
    /// <summary>When it expires, in the loop's TimeProvider timestamps; meaningful while <see cref="Loop"/> is set.</summary>
    internal long Due;
    internal LoopDeadline? Previous, Next;
    /// <summary>The loop it is armed on, or null while disarmed. Written under that loop's deadline lock.</summary>
    internal EventLoop? Loop;

    public bool IsArmed => Volatile.Read(ref Loop) is not null;

    /// <summary>Stops it (no-op when not armed or already expired).</summary>
    public void Disarm() => Volatile.Read(ref Loop)?.Disarm(this);
}
