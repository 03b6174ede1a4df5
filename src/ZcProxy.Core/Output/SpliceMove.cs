using System.Runtime.CompilerServices;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Output;

/// <summary>
/// The one splice loop: exactly a given number of bytes from a source socket through a leased pipe into a sink
/// socket, with non-blocking splice(2) calls on the connection's event loop. The pipe's fill level is tracked so that
/// EAGAIN from the source side means "no data yet" (the pipe has room) and EAGAIN from the sink side means "socket
/// full". When neither can move, it waits for the side that blocks (the ends bound each wait by an idle timeout).
/// Response bodies, request bodies and cache fills (through a <see cref="SpliceStage"/>) all run this loop. On an
/// event loop it delivers at most one <see cref="LoopTurn"/> share per loop turn, then lets the loop's other
/// connections run: a fast upstream and a client that reads as fast never make it wait, so without the cap one large
/// body went out in one loop iteration.
/// </summary>
internal static class SpliceMove
{
    private const long NotFull = -1;

    /// <param name="between">
    /// A stage between the source's pipe and the sink (a cache fill's tee into a file): the sink then drains the stage's
    /// pipe, and the stage completes after the last byte reached the sink. Null: the sink drains <paramref name="pipe"/>.
    /// </param>
    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))] // suspended at every wait: a pooled frame, not a box per body
    public static async ValueTask<BodyResult> RunAsync(SpliceEnds ends, SplicePipe pipe, long length, CancellationToken cancellationToken,
        SpliceStage? between = null)
    {
        try
        {
            var drained = between?.Out ?? pipe;
            long toRead = length, toWrite = length;
            var turn = new LoopTurn();
            // What is known without a syscall (as the relay's loop knows it): the sink is full from a splice into it that
            // found it full (EAGAIN, or fewer bytes than offered: the kernel then reports when it takes bytes again) until
            // its write sequence moves past the snapshot taken before that splice; the pipe is full (its slots, even when
            // its byte count is not: EAGAIN with bytes in it) until its fill level changes. A splice that could only
            // EAGAIN is not made: before, after each partial splice into a slow upstream the move tried the sink once or
            // twice more and the source once (a 256 MiB upload: 68 of 92 EAGAINs), each a syscall for nothing.
            bool sinkFull = false;
            int sinkFullSequence = 0;
            long pipeFullAt = NotFull;
            while (toWrite > 0)
            {
                if (cancellationToken.IsCancellationRequested) return ends.Cancelled();
                // An empty pipe that this turn could not drain whole once filled: the turn ends now, not in mid-pipe.
                if (toRead > 0 && pipe.Buffered == 0 && drained.Buffered == 0 && turn.TooShortFor(Math.Min(drained.Capacity, toRead)))
                    await turn.YieldAsync();
                bool progress = false;
                // Readiness snapshots before the syscalls: an edge after them ends the waits below.
                int readSequence = ends.SourceSequence, writeSequence = ends.SinkSequence;
                bool reading = toRead > 0;
                if (pipe.Buffered != pipeFullAt)
                {
                    if (Fill(ends, pipe, ref toRead, ref progress) is { } readFailed) return readFailed;
                    if (!progress && toRead > 0 && pipe.Buffered > 0 && pipe.Buffered < pipe.Capacity) pipeFullAt = pipe.Buffered;
                }
                if (reading && toRead == 0) ends.SourceReadToEnd(readSequence);
                if (between is not null && pipe.Buffered > 0 && drained.Buffered < drained.Capacity)
                {
                    long before = drained.Buffered;
                    if (await between.StepAsync(pipe) is { } stageFailed) return stageFailed;
                    progress |= drained.Buffered != before;
                }
                if (drained.Buffered > 0)
                {
                    if (!sinkFull || writeSequence != sinkFullSequence)
                    {
                        long offered = turn.Allow(drained.Buffered);
                        if (Drain(ends, drained, offered, out long sent) is { } writeFailed) return writeFailed;
                        sinkFull = sent < offered;
                        sinkFullSequence = writeSequence;
                        if (sent > 0)
                        {
                            toWrite -= sent;
                            if (turn.Spend(sent) && toWrite > 0) await turn.YieldAsync(); // the loop's other connections first
                            continue;
                        }
                    }
                    if (!progress)
                    {
                        turn.End();
                        var writable = await ends.SinkWritableAsync(writeSequence, cancellationToken);
                        if (!writable.IsComplete) return writable;
                        sinkFull = false;
                        pipeFullAt = NotFull;
                    }
                    continue;
                }
                if (!progress)
                {
                    turn.End();
                    var readable = await ends.SourceReadableAsync(readSequence, cancellationToken);
                    if (!readable.IsComplete) return readable;
                    pipeFullAt = NotFull;
                }
            }
            if (between is not null) await between.CompleteAsync();
            return BodyResult.Complete;
        }
        finally { ends.EndWaits(); }
    }

    /// <summary>
    /// source → pipe: one non-blocking splice when the pipe has room. Null: go on (<paramref name="progress"/> set when
    /// bytes moved; EAGAIN is no progress); otherwise how the move ended.
    /// </summary>
    public static BodyResult? Fill(SpliceEnds ends, SplicePipe pipe, ref long toRead, ref bool progress)
    {
        if (toRead <= 0 || pipe.Buffered >= pipe.Capacity) return null;
        if (!FdLease.TryAcquire(ends.Source, out var from)) return ends.SourceFailed("its socket was closed");
        SysResult r;
        using (from) r = Syscalls.Splice(from.Fd, pipe.WriteFd, Math.Min(toRead, pipe.Capacity - pipe.Buffered), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (!r.Ok) return r.WouldBlock ? null : ends.SourceFailed(r.ToException("splice").Message);
        if (r.Bytes == 0) return ends.SourceEnded(toRead);
        pipe.Buffered += r.Bytes;
        toRead -= r.Bytes;
        progress = true;
        ends.Taken(r.Bytes);
        return null;
    }

    /// <summary>
    /// pipe → sink: one non-blocking splice of what the pipe holds, at most <paramref name="most"/> bytes (what the
    /// loop turn has left), counted as delivered. Null: go on (<paramref name="sent"/> is 0 when the sink is full);
    /// otherwise how the move ended.
    /// </summary>
    public static BodyResult? Drain(SpliceEnds ends, SplicePipe pipe, long most, out long sent)
    {
        sent = 0;
        if (!FdLease.TryAcquire(ends.Sink, out var to)) return ends.SinkFailed("its socket was closed");
        SysResult w;
        using (to) w = Syscalls.Splice(pipe.ReadFd, to.Fd, Math.Min(pipe.Buffered, most), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (w.Ok && w.Bytes > 0)
        {
            sent = w.Bytes;
            pipe.Buffered -= sent;
            ends.Delivered(sent);
            return null;
        }
        if (w.WouldBlock) return null;
        return ends.SinkFailed(w.Ok ? "splice moved 0 bytes" : w.ToException("splice").Message);
    }
}

/// <summary>
/// A step between the pipe a splice move fills from its source and the pipe its sink drains: a cache fill tees the
/// bytes into a file on the way (<see cref="SocketBody"/>'s teeing move).
/// </summary>
internal abstract class SpliceStage
{
    /// <summary>The pipe the sink drains.</summary>
    public abstract SplicePipe Out { get; }

    /// <summary>
    /// Moves what it can of the bytes <paramref name="from"/> holds into <see cref="Out"/> (which has room); null: go on
    /// (progress is seen in <see cref="Out"/>'s fill level), otherwise how the move ended.
    /// </summary>
    public abstract ValueTask<BodyResult?> StepAsync(SplicePipe from);

    /// <summary>After the sink has every byte.</summary>
    public virtual ValueTask CompleteAsync() => default;
}
