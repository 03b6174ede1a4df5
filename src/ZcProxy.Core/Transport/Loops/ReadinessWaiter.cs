using System.Threading.Tasks.Sources;

namespace ZcProxy.Core.Transport.Loops;

/// <summary>
/// One direction's wait of a <see cref="LoopSocket"/>: an allocation-free awaitable, reset per wait. The waiter arms
/// it from any thread; the loop completes it, and the continuation runs inline on the loop thread (no pool hop).
/// The armed/idle state is an Interlocked flag, so exactly one side completes a wait and no edge is lost.
/// </summary>
internal sealed class ReadinessWaiter : IValueTaskSource<bool>
{
    private ManualResetValueTaskSourceCore<bool> _core; // RunContinuationsAsynchronously = false: run-to-completion
    private int _armed;

    /// <summary>
    /// Waits until <paramref name="sequence"/> moves past <paramref name="seen"/> (an event arrived since the caller's
    /// syscall) or the wait is woken (<see cref="TryComplete"/> with false: cancel, failure; the caller re-checks).
    /// </summary>
    public ValueTask<bool> WaitAsync(ref int sequence, int seen)
    {
        _core.Reset();
        Interlocked.Exchange(ref _armed, 1);
        // An edge that arrived between the caller's syscall and the arming above would otherwise be lost.
        if (Volatile.Read(ref sequence) != seen && Interlocked.CompareExchange(ref _armed, 0, 1) == 1)
            return new ValueTask<bool>(true);
        return new ValueTask<bool>(this, _core.Version);
    }

    /// <summary>Completes the armed wait, if any (on the loop thread: its continuation runs here).</summary>
    public void TryComplete(bool edge)
    {
        if (Interlocked.CompareExchange(ref _armed, 0, 1) == 1) _core.SetResult(edge);
    }

    public bool IsArmed => Volatile.Read(ref _armed) != 0;

    /// <summary>As awaiting the current wait's value task (its continuation runs where the wait completes).</summary>
    public void OnWaitOver(Action<object?> continuation, object state)
        => _core.OnCompleted(continuation, state, _core.Version, ValueTaskSourceOnCompletedFlags.None);

    public bool GetResult(short token) => _core.GetResult(token);
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);
}
