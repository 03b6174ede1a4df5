using System.Collections.Concurrent;

namespace ZcProxy.Core.Caching;

/// <summary>
/// nginx's proxy_cache_lock: the first miss for a key fetches it; concurrent misses wait (bounded) for that
/// fill and are then answered from the new entry. The outcome tells waiters whether an entry was stored.
/// </summary>
internal sealed class CacheLock
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<bool>> _fills = new(StringComparer.Ordinal);
    private int _waiting;

    /// <summary>Requests currently waiting for another request's fill (a gauge, and what tests synchronise on).</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>Waits for a running fill, at most <paramref name="timeout"/>; true when it stored an entry.</summary>
    public async Task<bool> WaitAsync(Task<bool> running, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _waiting);
        try
        {
            return await running.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException) { return false; }
        finally { Interlocked.Decrement(ref _waiting); }
    }

    /// <summary>Null when this caller now holds the lock for the key; otherwise the running fill's outcome.</summary>
    public Task<bool>? TryAcquire(string key)
    {
        var mine = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var current = _fills.GetOrAdd(key, mine);
        return ReferenceEquals(current, mine) ? null : current.Task;
    }

    public void Release(string key, bool stored)
    {
        if (_fills.TryRemove(key, out var tcs)) tcs.TrySetResult(stored);
    }
}
