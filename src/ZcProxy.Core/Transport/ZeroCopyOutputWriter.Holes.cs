using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using ZcProxy.Core.Output;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Transport;

/// <summary>Body holes: bytes the kernel moves into the client socket at flush time (the move itself is the body source's).</summary>
internal sealed partial class ZeroCopyOutputWriter
{
    private Func<CancellationToken, ValueTask<BodyResult>>? _hole;
    private ReadOnlyMemory<byte> _holeLead;
    private long _holeLength;
    private long _holeSeen;
    private CancellationToken _holeToken;
    private BodyResult? _holeResult;
    private bool _expectHole;
    // The move's token: one source per writer (a connection sends one hole at a time), linked to the hole's tokens by
    // registrations and to the connection's close by CancelOnClose, reset after the move; a linked source per hole was
    // an allocation per spliced response.
    private CancellationTokenSource? _moveCancel;
    private CancellationTokenRegistration _moveOnHole, _moveOnFlush;

    /// <summary>A hole follows the next flushes: send the response head with MSG_MORE so it leaves with the body.</summary>
    public void ExpectHole() => _expectHole = true;

    /// <summary>
    /// From now on GetMemory hands out scratch memory and Advance counts hole bytes; the next flush sends what is
    /// buffered, then runs <paramref name="move"/>, which moves <paramref name="length"/> bytes into the socket.
    /// Call after the response head was written. <paramref name="lead"/>: the hole's first bytes when they are in user
    /// space already (a socket body's prefix, part of <paramref name="length"/>): they leave with the buffered head in
    /// one gathered send, and the move is called only once they are sent (it then moves the rest). Valid until EndHole.
    /// </summary>
    public void BeginHole(Func<CancellationToken, ValueTask<BodyResult>> move, long length, CancellationToken cancellationToken,
        ReadOnlyMemory<byte> lead = default)
    {
        if (_hole is not null) throw new InvalidOperationException("a body hole is already open");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        _hole = move;
        _holeLength = length;
        _holeSeen = 0;
        _holeToken = cancellationToken;
        _holeResult = null;
        _holeLead = lead;
    }

    /// <summary>
    /// Copies the hole's lead behind the buffered bytes (everything Kestrel wrote before the hole), so one send takes
    /// both: a copy of a few KiB costs less than a syscall. Not when Kestrel's count disagrees (the hole then fails unsent).
    /// </summary>
    private void BufferLead()
    {
        if (_holeLead.IsEmpty || _holeSeen != _holeLength) return;
        for (var lead = _holeLead.Span; !lead.IsEmpty;)
        {
            var room = BufferMemory(1).Span;
            int n = Math.Min(room.Length, lead.Length);
            lead[..n].CopyTo(room);
            Commit(n);
            lead = lead[n..];
        }
        _holeLead = default;
    }

    /// <summary>
    /// Runs the open hole now, in a flush of this writer called directly rather than through Kestrel's: when a move
    /// waits for a socket (any body larger than the socket buffers), Kestrel's ConcurrentPipeWriter completes its
    /// pending flush through a TaskCompletionSource with RunContinuationsAsynchronously, which would resume the rest of
    /// the request on the thread pool instead of on this connection's loop. The caller flushes through Kestrel after
    /// (its bookkeeping), which then finds nothing to send. Only when Kestrel passed every hole byte straight through
    /// (its head is then in this writer too); otherwise the hole stays open for Kestrel's flush, which reports it.
    /// </summary>
    public ValueTask<FlushResult> FlushHoleAsync(CancellationToken cancellationToken)
        => _hole is null || _holeSeen != _holeLength ? default : FlushAsync(cancellationToken);

    /// <summary>
    /// The hole's outcome after its flush, and closes it. <paramref name="thrown"/> is what the app's
    /// GetMemory/Advance/FlushAsync threw, if anything: it decides only when the hole did not run. A failure has faulted the writer and aborted the connection.
    /// </summary>
    public BodyResult EndHole(Exception? thrown = null)
    {
        BodyResult result;
        if (_holeResult is { IsComplete: false } failed) result = failed;
        // Every byte of the hole is in the socket: what Kestrel's flush after it throws cannot take that back. A client
        // that reads the whole body and hangs up at once has its request aborted by then (that flush throws), and calling
        // the body failed would also close a drained upstream connection instead of pooling it.
        else if (_holeResult is { IsComplete: true }) result = BodyResult.Complete;
        else if (thrown is not null) result = Classify(thrown);
        else if (_holeResult is null)
            result = BodyResult.Failed(BodyOutcome.TransportFailed,
                "the body hole was not flushed through this writer (Kestrel buffered it or the writer was completed)");
        else result = BodyResult.Complete;
        _hole = null;
        _holeResult = null;
        _holeLead = default;
        _expectHole = false;
        if (!result.IsComplete) Fault(new IOException(result.Reason));
        return result;
    }

    /// <summary>
    /// Runs the open hole's move; its outcome is kept for EndHole (nothing is thrown). Without an async frame when the move
    /// completes at once (a spliced 64 KiB body, a resident file range): a frame per hole was ~0.2 % of the samples.
    /// </summary>
    private ValueTask MoveHole(CancellationToken flushToken)
    {
        if (_holeSeen != _holeLength)
        {
            _holeResult = BodyResult.Failed(BodyOutcome.TransportFailed,
                $"Kestrel passed {_holeSeen} of the hole's {_holeLength} bytes through to the transport: it no longer writes them straight through");
            EndMove();
            return default;
        }
        ValueTask<BodyResult> moving;
        try
        {
            moving = _hole!(BeginMoveToken(flushToken));
            if (!moving.IsCompleted) return AwaitMoveAsync(moving, flushToken);
            _holeResult = moving.GetAwaiter().GetResult();
        }
        catch (Exception e) { _holeResult = Classify(e); }
        EndMoveToken(linked: false);
        EndMove();
        return default;
    }

    /// <summary>The move waits: linked to its tokens until it ends (<see cref="LinkMoveToken"/>).</summary>
    [AsyncMethodBuilder(typeof(FramePoolBuilder))] // suspended whenever the body outruns the socket buffers
    private async ValueTask AwaitMoveAsync(ValueTask<BodyResult> moving, CancellationToken flushToken)
    {
        try
        {
            try
            {
                LinkMoveToken(flushToken);
                _holeResult = await moving;
            }
            finally { EndMoveToken(linked: true); }
        }
        catch (Exception e) { _holeResult = Classify(e); }
        EndMove();
    }

    /// <summary>The hole is closed; a failed move faults the writer (and aborts the connection).</summary>
    private void EndMove()
    {
        _hole = null;
        _expectHole = false;
        if (_holeResult is { IsComplete: false } failed) Fault(new IOException(failed.Reason));
    }

    /// <summary>
    /// The move's token: cancelled already when the hole's token, the flush's or the connection's is, and linked to them
    /// only once the move waits (<see cref="LinkMoveToken"/>). A move that runs to its end without waiting (a spliced
    /// 64 KiB body, a resident file range) checks its token between its calls and is over before a cancellation could
    /// reach it by a registration: two registrations and their removal per body were ~0.3 % of a 64 KiB response's CPU.
    /// </summary>
    private CancellationToken BeginMoveToken(CancellationToken flushToken)
    {
        var source = _moveCancel ??= new CancellationTokenSource();
        if (_holeToken.IsCancellationRequested || flushToken.IsCancellationRequested || _connection.CloseCancelled) source.Cancel();
        return source.Token;
    }

    /// <summary>
    /// The move waits: from now on the hole's token, the flush's and the connection's cancel it (what a linked source of
    /// the three would do). One cancelled meanwhile cancels it at once; its waits are woken by posts, never inline.
    /// </summary>
    private void LinkMoveToken(CancellationToken flushToken)
    {
        var source = _moveCancel!;
        _moveOnHole = CancelOn(_holeToken, source);
        _moveOnFlush = flushToken == _holeToken ? default : CancelOn(flushToken, source);
        _connection.CancelOnClose(CloseLinked.HoleMove, source); // no registration the connection's source would keep

        static CancellationTokenRegistration CancelOn(CancellationToken token, CancellationTokenSource source) => token.CanBeCanceled
            ? token.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), source) : default;
    }

    /// <summary>
    /// Unlinks the move's source (no cancellation can reach it after this) and readies it for the next hole; a cancelled
    /// one is replaced. The moves dispose their registrations on it before they complete, so a move that never waited
    /// (<paramref name="linked"/> false) left none, and an uncancelled source needs no reset then: its reset (a lock and
    /// a walk of its empty registration list) was the largest cancellation cost left per spliced body (0.19 % of samples).
    /// </summary>
    private void EndMoveToken(bool linked)
    {
        if (linked)
        {
            _moveOnHole.Dispose();
            _moveOnFlush.Dispose();
            _moveOnHole = _moveOnFlush = default;
        }
        if (_moveCancel is not { } source || !linked && !source.IsCancellationRequested) return;
        if (linked && !_connection.StopCancelOnClose(CloseLinked.HoleMove, source)) _moveCancel = null; // the close is cancelling it: never reused
        else if (!source.TryReset())
        {
            source.Dispose();
            _moveCancel = null;
        }
    }

    /// <summary>What an exception around a hole means: the client's failure (it went away, or Kestrel cancelled the flush), else ours.</summary>
    private BodyResult Classify(Exception e) => e switch
    {
        _ when _connection.IsAborted => BodyResult.Failed(BodyOutcome.ClientFailed, "the client connection was aborted"),
        OperationCanceledException or IOException or ObjectDisposedException => BodyResult.Failed(BodyOutcome.ClientFailed, $"client connection failed: {e.Message}"),
        _ => BodyResult.Failed(BodyOutcome.TransportFailed, $"{e.GetType().Name}: {e.Message}"),
    };
}
