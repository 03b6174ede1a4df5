using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Upstream;

/// <summary>
/// The response-head timeout of the exchange running on this connection, one mechanism per exchange and nothing
/// allocated per request. A loop-native connection arms a <see cref="LoopDeadline"/> of its own on its event loop, which
/// checks it between epoll waits; expiry fails the socket's waits (the connection is then discarded). A connection on
/// .NET's socket engine reuses one CancellationTokenSource (and its timer), reset after each exchange. A connection
/// carries one exchange at a time, so one of each is enough.
/// </summary>
internal sealed partial class UpstreamConnection
{
    private LoopDeadline? _headDeadline;
    private CancellationTokenSource? _headTimeout;
    private CancellationTokenRegistration _headTimeoutLink;

    /// <summary>
    /// The token the head read observes: <paramref name="aborted"/> itself on the loop (the deadline and
    /// <see cref="CancelHeadRead"/> fail the socket's waits instead), else one also cancelled by the timeout.
    /// </summary>
    public CancellationToken BeginHeadTimeout(CancellationToken aborted)
    {
        if (Readiness is not null) return aborted;
        _headTimeout ??= new CancellationTokenSource();
        _headTimeoutLink = aborted.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _headTimeout);
        return _headTimeout.Token;
    }

    /// <summary>Starts the clock: the head must be complete within <paramref name="delay"/>.</summary>
    public void ArmHeadTimeout(TimeSpan delay)
    {
        if (Readiness is { } readiness)
        {
            _headDeadline ??= new LoopDeadline(static s => ((UpstreamConnection)s!).StopHeadRead("no response head in time"), this);
            readiness.Loop.Arm(_headDeadline, delay);
        }
        else _headTimeout!.CancelAfter(delay);
    }

    /// <summary>The head is no longer awaited: the pending read ends with an OperationCanceledException.</summary>
    public void CancelHeadRead()
    {
        if (Readiness is not null) StopHeadRead("the response head is no longer awaited");
        else _headTimeout!.Cancel();
    }

    // Every later wait of the socket fails (a cancellation, which the forwarder reports as a head timeout unless the
    // client aborted): the exchange is over and the connection is discarded, never pooled (LooksStale sees the failure).
    private void StopHeadRead(string reason) => Readiness?.Fail(new OperationCanceledException(reason));

    /// <summary>The exchange is over: deadline disarmed (or the timer stopped and the source unlinked), ready for the next one.</summary>
    public void EndHeadTimeout()
    {
        _headDeadline?.Disarm();
        _headTimeoutLink.Dispose();
        _headTimeoutLink = default;
        if (_headTimeout is { } source && !source.TryReset())
        {
            source.Dispose();
            _headTimeout = null;
        }
    }
}
