using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Output;

/// <summary>
/// The readiness waits of the kernel moves, as results: a wait either ends ready (Complete) or says whose failure
/// stopped it. An idle timeout bounds a wait when given (Infinite: unbounded); a wait cancelled by the connection's
/// abort or by Kestrel (flush cancelled) is the client's failure.
/// </summary>
internal static class KernelWaits
{
    /// <summary>
    /// Until the client socket takes bytes again (a write edge after <paramref name="sequence"/>, the client socket's
    /// WriteSequence taken before the syscall that hit EAGAIN); a client that takes nothing for <paramref name="idleTimeout"/> failed.
    /// </summary>
    public static ValueTask<BodyResult> ClientWritableAsync(ZeroCopyConnection client, int sequence, TimeSpan idleTimeout, CancellationToken cancellationToken)
        => WaitAsync(t => client.Output.WaitWritableAsync(sequence, t), client, idleTimeout, BodyOutcome.ClientFailed, "the client took no byte", cancellationToken);

    /// <summary>
    /// Until the source socket has data (a read edge after <paramref name="sequence"/>). A client that hangs up or
    /// resets meanwhile closes its connection, which fails this wait too (a reset client never waits on a slow
    /// upstream). A source that sends nothing for <paramref name="idleTimeout"/> timed out.
    /// </summary>
    public static ValueTask<BodyResult> SourceReadableAsync(ZeroCopyConnection client, LoopSocket source, int sequence, TimeSpan idleTimeout, CancellationToken cancellationToken)
        => WaitAsync(t => source.WaitReadableAsync(sequence, t), client, idleTimeout, BodyOutcome.SourceTimedOut, "the upstream sent nothing", cancellationToken);

    /// <summary>
    /// Until the client sends more of a spliced request body (a read edge after <paramref name="sequence"/>); a client that
    /// sends nothing for <paramref name="idleTimeout"/> timed out (nginx client_body_timeout).
    /// </summary>
    public static ValueTask<BodyResult> ClientReadableAsync(ZeroCopyConnection client, int sequence, TimeSpan idleTimeout, CancellationToken cancellationToken)
        => WaitAsync(t => client.ClientSocket.WaitReadableAsync(sequence, t), client, idleTimeout, BodyOutcome.SourceTimedOut, "the client sent nothing", cancellationToken);

    /// <summary>
    /// Until the upstream socket takes bytes of a request body again (a write edge after <paramref name="sequence"/>);
    /// an upstream that takes nothing for <paramref name="idleTimeout"/> failed. A client that goes away meanwhile ends the wait.
    /// </summary>
    public static ValueTask<BodyResult> UpstreamWritableAsync(ZeroCopyConnection client, LoopSocket upstream, int sequence, TimeSpan idleTimeout, CancellationToken cancellationToken)
        => WaitAsync(t => upstream.WaitWritableAsync(sequence, t), client, idleTimeout, BodyOutcome.SinkFailed, "the upstream took no byte", cancellationToken);

    private static async ValueTask<BodyResult> WaitAsync(Func<CancellationToken, ValueTask> wait, ZeroCopyConnection client, TimeSpan idleTimeout,
        BodyOutcome idleOutcome, string stalled, CancellationToken cancellationToken)
    {
        using var idle = idleTimeout == Timeout.InfiniteTimeSpan ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        idle?.CancelAfter(idleTimeout);
        try
        {
            await wait(idle?.Token ?? cancellationToken);
            return BodyResult.Complete;
        }
        catch (OperationCanceledException) when (idle is { IsCancellationRequested: true } && !cancellationToken.IsCancellationRequested && !client.IsAborted)
        {
            return BodyResult.Failed(idleOutcome, $"{stalled} for {idleTimeout.TotalMilliseconds:0} ms");
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            return BodyResult.Failed(BodyOutcome.ClientFailed, client.IsAborted ? "the client connection was aborted" : $"client connection failed: {e.Message}");
        }
    }
}
