using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Output;

/// <summary>
/// The client-writable wait of the file moves (sendfile, direct I/O), as a result: it either ends ready (Complete) or
/// says whose failure stopped it. An idle timeout bounds it when given (Infinite: unbounded); a wait cancelled by the
/// connection's abort or by Kestrel (flush cancelled) is the client's failure. The splice moves wait through
/// <see cref="SpliceEnds"/> instead, bounded by the event loop's own deadlines.
/// </summary>
internal static class KernelWaits
{
    /// <summary>
    /// Until the client socket takes bytes again (a write edge after <paramref name="sequence"/>, the client socket's
    /// WriteSequence taken before the syscall that hit EAGAIN); a client that takes nothing for <paramref name="idleTimeout"/> failed.
    /// </summary>
    public static async ValueTask<BodyResult> ClientWritableAsync(ZeroCopyConnection client, int sequence, TimeSpan idleTimeout, CancellationToken cancellationToken)
    {
        using var idle = idleTimeout == Timeout.InfiniteTimeSpan ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        idle?.CancelAfter(idleTimeout);
        try
        {
            await client.Output.WaitWritableAsync(sequence, idle?.Token ?? cancellationToken);
            return BodyResult.Complete;
        }
        catch (OperationCanceledException) when (idle is { IsCancellationRequested: true } && !cancellationToken.IsCancellationRequested && !client.IsAborted)
        {
            return BodyResult.Failed(BodyOutcome.ClientFailed, $"the client took no byte for {idleTimeout.TotalMilliseconds:0} ms");
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            return BodyResult.Failed(BodyOutcome.ClientFailed, client.IsAborted ? "the client connection was aborted" : $"client connection failed: {e.Message}");
        }
    }
}
