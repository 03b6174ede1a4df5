namespace ZcProxy.Core.Balancing;

internal enum SlotResult { Entered, QueueFull, TimedOut }

/// <summary>
/// A destination's concurrent-request limit with a bounded FIFO queue (HAProxy maxconn + maxqueue + timeout queue).
/// A released slot is handed straight to the oldest waiter, so the limit holds even under contention.
/// The limit is passed on every call because it can change with a reload. The proxy's tries take a slot only from a
/// destination that has a limit (<see cref="ConnectionLimits"/>): a try begun while the destination had none is not
/// counted here if a reload sets one meanwhile, so for the length of such tries the new limit admits up to that many more.
/// </summary>
internal sealed class ConnectionSlots(TimeProvider time)
{
    private readonly object _lock = new();
    private readonly LinkedList<TaskCompletionSource<bool>> _waiters = new();
    private int _inUse;

    public int InUse { get { lock (_lock) return _inUse; } }
    public int QueueLength { get { lock (_lock) return _waiters.Count; } }

    /// <summary>Takes a slot if one is free now (limit 0 = unlimited).</summary>
    public bool TryEnter(int limit)
    {
        lock (_lock)
        {
            if (limit > 0 && (_inUse >= limit || _waiters.Count > 0)) return false;
            _inUse++;
            return true;
        }
    }

    public bool HasFreeSlot(int limit)
    {
        if (limit <= 0) return true;
        lock (_lock) return _inUse < limit && _waiters.Count == 0;
    }

    /// <summary>Takes a slot, waiting in the queue (at most <paramref name="maxQueue"/> waiters) for up to <paramref name="timeout"/>.</summary>
    public async Task<SlotResult> EnterAsync(int limit, int maxQueue, TimeSpan timeout, CancellationToken cancel)
    {
        TaskCompletionSource<bool> waiter;
        LinkedListNode<TaskCompletionSource<bool>> node;
        lock (_lock)
        {
            if (limit <= 0 || (_inUse < limit && _waiters.Count == 0)) { _inUse++; return SlotResult.Entered; }
            if (_waiters.Count >= maxQueue || timeout <= TimeSpan.Zero) return SlotResult.QueueFull;
            waiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            node = _waiters.AddLast(waiter);
        }
        try
        {
            await waiter.Task.WaitAsync(timeout, time, cancel).ConfigureAwait(false);
            return SlotResult.Entered;
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            lock (_lock)
            {
                // Granted between the timeout firing and this lock: the slot is ours, so use it.
                if (waiter.Task.IsCompletedSuccessfully) return SlotResult.Entered;
                _waiters.Remove(node);
                waiter.TrySetCanceled(CancellationToken.None);
            }
            if (e is OperationCanceledException) throw;
            return SlotResult.TimedOut;
        }
    }

    public void Exit()
    {
        lock (_lock)
        {
            if (_waiters.First is { } first)
            {
                // The slot passes to the oldest waiter (_inUse unchanged). Completed under the lock so that a
                // waiter timing out at the same moment sees it; continuations run asynchronously.
                _waiters.RemoveFirst();
                first.Value.TrySetResult(true);
            }
            else _inUse--;
        }
    }
}
