namespace ZcProxy.Core.Upstream;

/// <summary>
/// The response-head timeout of the exchange running on this connection: one CancellationTokenSource per connection,
/// reset after each exchange and so reused with its timer, instead of a linked source (and a timer) per request.
/// A connection carries one exchange at a time, so one is enough.
/// </summary>
internal sealed partial class UpstreamConnection
{
    private CancellationTokenSource? _headTimeout;
    private CancellationTokenRegistration _headTimeoutLink;

    /// <summary>A token cancelled when <paramref name="aborted"/> is, when <see cref="CancelHeadRead"/> is called, or once armed time passes.</summary>
    public CancellationToken BeginHeadTimeout(CancellationToken aborted)
    {
        _headTimeout ??= new CancellationTokenSource();
        _headTimeoutLink = aborted.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _headTimeout);
        return _headTimeout.Token;
    }

    /// <summary>Starts the clock: the head must be complete within <paramref name="delay"/>.</summary>
    public void ArmHeadTimeout(TimeSpan delay) => _headTimeout!.CancelAfter(delay);

    public void CancelHeadRead() => _headTimeout!.Cancel();

    /// <summary>The exchange is over: unlinked, timer stopped, ready for the next one (a cancelled source is replaced then).</summary>
    public void EndHeadTimeout()
    {
        _headTimeoutLink.Dispose();
        _headTimeoutLink = default;
        if (_headTimeout is { } source && !source.TryReset())
        {
            source.Dispose();
            _headTimeout = null;
        }
    }
}
