using ZcProxy.Core.Transport;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Output;

/// <summary>
/// The readiness waits of the kernel moves, as results: a wait either ends ready (Complete) or says whose failure
/// stopped it. An idle timeout bounds a wait when given (Infinite: unbounded); a wait cancelled by the connection's
/// abort or by Kestrel (flush cancelled) is the client's failure.
/// </summary>
internal static class KernelWaits
{
    /// <summary>Until the client socket takes bytes again; a client that takes nothing for <paramref name="idleTimeout"/> failed.</summary>
    public static ValueTask<BodyResult> ClientWritableAsync(ZeroCopyConnection client, TimeSpan idleTimeout, CancellationToken cancellationToken)
        => WaitAsync(t => client.Output.WaitWritableAsync(t), client, idleTimeout, BodyOutcome.ClientFailed, "the client took no byte", cancellationToken);

    /// <summary>
    /// Until the source socket has data, while watching the client for EPOLLERR/EPOLLHUP (a reset client must not wait
    /// on a slow upstream). A source that sends nothing for <paramref name="idleTimeout"/> timed out.
    /// </summary>
    public static ValueTask<BodyResult> SourceReadableAsync(ZeroCopyConnection client, ReactorRegistration source, TimeSpan idleTimeout, CancellationToken cancellationToken)
        => WaitAsync(t => ReadableWatchingClientAsync(client, source, t), client, idleTimeout, BodyOutcome.SourceTimedOut, "the upstream sent nothing", cancellationToken);

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

    private static async ValueTask ReadableWatchingClientAsync(ZeroCopyConnection client, ReactorRegistration source, CancellationToken cancellationToken)
    {
        using var race = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var readable = source.WaitAsync(EPOLLIN | EPOLLRDHUP, race.Token);
        var clientTrouble = client.ClientReadiness.WaitAsync(0, race.Token);
        var first = await Task.WhenAny(readable, clientTrouble).ConfigureAwait(false);
        race.Cancel();
        // Both waits must be over before either fd is waited on again (one wait per fd at a time).
        try { await readable.ConfigureAwait(false); } catch (Exception) when (first != readable) { }
        try { await clientTrouble.ConfigureAwait(false); } catch (Exception) when (first != clientTrouble) { }
        if (first == clientTrouble) throw new IOException("the client socket reported an error or hang-up");
    }
}
