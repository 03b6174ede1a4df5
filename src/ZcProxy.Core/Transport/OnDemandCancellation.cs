namespace ZcProxy.Core.Transport;

/// <summary>
/// A cancellation signal whose <see cref="CancellationTokenSource"/> is made only when someone asks for its token: an
/// idle connection that nobody asked holds no source, registration list or node (each source that someone once
/// registered on keeps both for its whole life: 192 B with the source). Once <see cref="Cancel"/> ran, a token asked for
/// is already cancelled; one asked for before is cancelled by it; either way its callbacks run exactly once (the
/// source's own guarantee). A mutable struct: keep it in a field that is not readonly and call it in place.
/// </summary>
internal struct OnDemandCancellation
{
    private CancellationTokenSource? _source;
    private int _cancelled;

    /// <summary><see cref="Cancel"/> ran (or is running).</summary>
    public readonly bool IsCancelled => Volatile.Read(in _cancelled) != 0;

    /// <summary>A source was made: someone asked for the token.</summary>
    public readonly bool HasSource => Volatile.Read(in _source) is not null;

    public CancellationToken Token
    {
        get
        {
            var source = Volatile.Read(ref _source);
            if (source is null)
            {
                if (IsCancelled) return new CancellationToken(canceled: true); // nothing can register on it any more: no source needed
                var made = new CancellationTokenSource();
                source = Interlocked.CompareExchange(ref _source, made, null) ?? made;
                // Against a Cancel that read no source before the exchange above: the flag is seen here then (both sides
                // are full fences), so a token asked for after the cancel is never left uncancelled.
                if (IsCancelled) CancelSource(source);
            }
            return source.Token;
        }
    }

    /// <summary>Cancels the token (given out or still to come); a second call does nothing.</summary>
    public void Cancel()
    {
        if (Interlocked.Exchange(ref _cancelled, 1) != 0) return;
        if (Volatile.Read(ref _source) is { } source) CancelSource(source);
    }

    private static void CancelSource(CancellationTokenSource source)
    {
        try { source.Cancel(); } catch (ObjectDisposedException) { }
    }
}
