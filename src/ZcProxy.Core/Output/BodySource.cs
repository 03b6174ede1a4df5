using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Output;

/// <summary>
/// Where a body's bytes come from, as nginx's buffers are memory or a file range: a file range, an O_DIRECT file,
/// an upstream socket. Every source can be copied (<see cref="ReadAsync"/>); some also offer a kernel move
/// (<see cref="Hole"/>, <see cref="MoveAsync"/>) that <see cref="ResponseBodySender"/> takes when it may. Whoever
/// creates a source disposes it after the transfer.
/// </summary>
internal abstract class BodySource : IAsyncDisposable
{
    /// <summary>The body's length when known up front (Content-Length); -1 when only the source's end tells.</summary>
    public abstract long Length { get; }

    /// <summary>The kernel mechanism this source can move its bytes with (sendfile, splice, direct I/O); null: copy only.</summary>
    public virtual BodyMechanism? Hole => null;

    /// <summary>How copied bytes are counted: direct-I/O reads stay "directio" even when copied.</summary>
    public virtual BodyMechanism CopiedAs => BodyMechanism.Copy;

    /// <summary>The next bytes of the body (valid until the next call), the end (empty), or a failure.</summary>
    public abstract ValueTask<SourceRead> ReadAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Moves exactly <see cref="Length"/> bytes into <paramref name="to"/>'s socket in the kernel, counting them under
    /// <see cref="Hole"/>. Runs inside the connection writer's flush; <paramref name="pipe"/> is the leased pipe a splice
    /// goes through (null for the other mechanisms).
    /// </summary>
    public virtual ValueTask<BodyResult> MoveAsync(ZeroCopyConnection to, SplicePipe? pipe, CancellationToken cancellationToken)
        => throw new NotSupportedException($"{GetType().Name} can only be copied");

    /// <summary>
    /// For a <see cref="MoveAsync"/> about to run: the body's first bytes when they are in user space already (a socket
    /// body's prefix), handed over to be sent with the response head in one send; <see cref="MoveAsync"/> then moves only
    /// the rest, and is called only after the lead was sent. Empty: nothing to hand over.
    /// </summary>
    public virtual ReadOnlyMemory<byte> TakeLead() => default;

    /// <summary>True when <see cref="MoveTeeingAsync"/> can also write the bytes into a file on the way (a spliced socket body).</summary>
    public virtual bool CanTee => false;

    /// <summary>
    /// As <see cref="MoveAsync"/>, and every byte also goes into <paramref name="tee"/>'s file in the kernel: tee(2) from
    /// <paramref name="pipe"/> into the tee's pipe, which goes to the client, and splice(2) of the original into the file.
    /// </summary>
    public virtual ValueTask<BodyResult> MoveTeeingAsync(ZeroCopyConnection to, SplicePipe pipe, FileTee tee, CancellationToken cancellationToken)
        => throw new NotSupportedException($"{GetType().Name} cannot tee");

    /// <summary>Returns what the source holds (buffers, handles it owns); the sender never disposes a source.</summary>
    public abstract ValueTask DisposeAsync();
}

/// <summary>One read of a source for a copy: bytes, the end of the body (no bytes, complete), or a failure.</summary>
internal readonly record struct SourceRead(ReadOnlyMemory<byte> Data, BodyResult Result)
{
    public static SourceRead End => default;

    public bool IsEnd => Result.IsComplete && Data.IsEmpty;

    public static SourceRead Of(ReadOnlyMemory<byte> data) => new(data, BodyResult.Complete);

    public static SourceRead Failed(BodyOutcome outcome, string reason) => new(default, BodyResult.Failed(outcome, reason));
}
