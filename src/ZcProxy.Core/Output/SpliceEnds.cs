using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Output;

/// <summary>
/// The two sockets of a <see cref="SpliceMove"/> and what their events mean: a response body (upstream → client,
/// <see cref="SocketBody"/>) or a request body (client → upstream, Forwarding's RequestBodySplice). The move itself
/// only splices and waits; the ends say which sockets to wait on and for how long, whose failure a failed call is, and
/// where the bytes count. Both sockets are registered with one event loop (the client connection's), where the waits run.
/// </summary>
internal abstract class SpliceEnds
{
    // Made at the first wait: most bodies up to a pipeful never wait (their bytes are there, the client takes them).
    // Kept for the next move of ends that are reused (a response body object's); the token registration is per move.
    private SpliceWait? _wait;
    private CancellationTokenRegistration _wake;
    private bool _waited; // this move has waited: its token is registered, and the source's reads may be paused

    /// <summary>The client connection of the request whose body moves is gone (its waits fail for that reason).</summary>
    protected abstract bool ClientAborted { get; }
    /// <summary>The socket bytes come from; leased around each call.</summary>
    public abstract SafeHandle Source { get; }
    /// <summary>The socket bytes go to; leased around each call.</summary>
    public abstract SafeHandle Sink { get; }
    /// <summary>The source's read readiness sequence, taken before the splice that may find it empty.</summary>
    public abstract int SourceSequence { get; }
    /// <summary>The sink's write readiness sequence, taken before the splice that may find it full.</summary>
    public int SinkSequence => SinkSocket.WriteSequence;
    /// <summary>The sink's registration with the client's loop.</summary>
    protected abstract LoopSocket SinkSocket { get; }
    /// <summary>The source's registration with the client's loop (made at the first wait when it has none yet).</summary>
    protected abstract LoopSocket SourceSocket();
    /// <summary>The source's registration if it has one already (a write wait pauses its reads), else null.</summary>
    protected virtual LoopSocket? RegisteredSource => SourceSocket();
    /// <summary>How long the source may send nothing, and the sink take nothing.</summary>
    protected abstract TimeSpan SourceIdle { get; }
    protected abstract TimeSpan SinkIdle { get; }

    /// <summary>The source sent nothing for <see cref="SourceIdle"/>.</summary>
    protected abstract BodyResult SourceStalled();
    /// <summary>The sink took nothing for <see cref="SinkIdle"/>.</summary>
    protected abstract BodyResult SinkStalled();
    public abstract BodyResult SourceFailed(string reason);
    /// <summary>The source finished sending (FIN) with <paramref name="left"/> bytes of the promised length still to come.</summary>
    public abstract BodyResult SourceEnded(long left);
    public abstract BodyResult SinkFailed(string reason);
    /// <summary>The move's token was cancelled (the client connection aborted, or the caller stopped the move).</summary>
    public abstract BodyResult Cancelled();

    /// <summary><paramref name="bytes"/> left the source for the pipe.</summary>
    public virtual void Taken(long bytes) { }
    /// <summary>The source's last byte of this move left it in a splice begun at read sequence <paramref name="sequence"/>.</summary>
    public virtual void SourceReadToEnd(int sequence) { }
    /// <summary><paramref name="bytes"/> reached the sink: counted as spliced.</summary>
    public abstract void Delivered(long bytes);

    /// <summary>Until the source has bytes after <paramref name="sequence"/>; anything but Complete ends the move.</summary>
    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))]
    public async ValueTask<BodyResult> SourceReadableAsync(int sequence, CancellationToken cancellationToken)
    {
        var socket = SourceSocket();
        return Ended(socket, await Waits(cancellationToken).WaitAsync(socket, forWrite: false, sequence, SourceIdle, cancellationToken), stalled: false);
    }

    /// <summary>Until the sink takes bytes again after <paramref name="sequence"/>; anything but Complete ends the move.</summary>
    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))]
    public async ValueTask<BodyResult> SinkWritableAsync(int sequence, CancellationToken cancellationToken)
    {
        var socket = SinkSocket;
        // The source's data is not read until the sink takes bytes: it need not wake the loop meanwhile.
        return Ended(socket, await Waits(cancellationToken).WaitAsync(socket, forWrite: true, sequence, SinkIdle, cancellationToken,
            idleReader: RegisteredSource), stalled: true);
    }

    /// <summary>The move is over: its token no longer wakes anything, the source's reads wake its loop again (idempotent).</summary>
    public void EndWaits()
    {
        _wake.Dispose();
        _wake = default;
        if (_waited) RegisteredSource?.ResumeReads();
        _waited = false;
    }

    /// <summary>
    /// The move's waits, made at its first: one deadline, and one registration that wakes a pending wait when the
    /// move's token (the same for all its waits) is cancelled, not one per wait.
    /// </summary>
    private SpliceWait Waits(CancellationToken cancellationToken)
    {
        if (!_waited)
        {
            _waited = true;
            if (cancellationToken.CanBeCanceled) _wake = cancellationToken.UnsafeRegister(static s => ((SpliceEnds)s!).WakeAll(), this);
        }
        return _wait ??= new SpliceWait();
    }

    /// <summary>Hook for a source registered lazily: wakes its reader too.</summary>
    protected virtual void WakeSource() => SourceSocket().WakeReader();

    private void WakeAll()
    {
        WakeSource();
        SinkSocket.WakeWriter();
    }

    private BodyResult Ended(LoopSocket socket, SpliceWaitEnd end, bool stalled) => end switch
    {
        SpliceWaitEnd.Ready => BodyResult.Complete,
        SpliceWaitEnd.TimedOut => stalled ? SinkStalled() : SourceStalled(),
        SpliceWaitEnd.Cancelled => Cancelled(),
        // A socket fails when its connection goes away (a client abort fails the sources registered with it too).
        _ => BodyResult.Failed(BodyOutcome.ClientFailed, ClientAborted
            ? "the client connection was aborted" : $"client connection failed: {socket.Failure?.Message}"),
    };
}
