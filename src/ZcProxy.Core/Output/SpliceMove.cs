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
    /// <remarks>
    /// The splices run here, without an async frame, until the move must wait, yield its turn or step its stage; only then
    /// does it continue in <see cref="ContinueAsync"/>. A body whose splices complete at once (most 64 KiB responses) runs
    /// no state machine: its frame was ~0.35 % of the proxy's samples at 64 KiB.
    /// </remarks>
    public static ValueTask<BodyResult> RunAsync(SpliceEnds ends, SplicePipe pipe, long length, CancellationToken cancellationToken,
        SpliceStage? between = null)
    {
        var run = new Run(length);
        Next next;
        BodyResult result;
        try { next = Step(ends, pipe, between, ref run, afterStage: false, cancellationToken, out result); }
        catch (Exception e)
        {
            ends.EndWaits();
            return ValueTask.FromException<BodyResult>(e);
        }
        if (next == Next.Done && between is null)
        {
            ends.EndWaits();
            return new ValueTask<BodyResult>(result);
        }
        return ContinueAsync(ends, pipe, between, run, next, result, cancellationToken);
    }

    /// <summary>What the move does next: it ended (with its result), or it awaits something.</summary>
    private enum Next { Done, Yield, WaitForSink, WaitForSource, Stage }

    /// <summary>The splice loop's state between its steps.</summary>
    private struct Run(long length)
    {
        public long ToRead = length, ToWrite = length;
        // What is known without a syscall (as the relay's loop knows it): the sink is full from a splice into it that
        // found it full (EAGAIN, or fewer bytes than offered: the kernel then reports when it takes bytes again) until
        // its write sequence moves past the snapshot taken before that splice; the pipe is full (its slots, even when
        // its byte count is not: EAGAIN with bytes in it) until its fill level changes. A splice that could only
        // EAGAIN is not made: before, after each partial splice into a slow upstream the move tried the sink once or
        // twice more and the source once (a 256 MiB upload: 68 of 92 EAGAINs), each a syscall for nothing.
        public bool SinkFull;
        public int SinkFullSequence;
        public long PipeFullAt = NotFull;
        public LoopTurn Turn;
        // This iteration's readiness snapshots, taken before its syscalls (an edge after them ends the waits), and whether it moved bytes.
        public int ReadSequence, WriteSequence;
        public bool Progress;
    }

    /// <summary>The move from where <see cref="Step"/> stopped: each await, then the next steps.</summary>
    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))] // suspended at every wait: a pooled frame, not a box per body
    private static async ValueTask<BodyResult> ContinueAsync(SpliceEnds ends, SplicePipe pipe, SpliceStage? between, Run run, Next next,
        BodyResult result, CancellationToken cancellationToken)
    {
        try
        {
            var drained = between?.Out ?? pipe;
            while (true)
            {
                bool afterStage = false;
                switch (next)
                {
                    case Next.Done:
                        if (result.IsComplete && between is not null) await between.CompleteAsync();
                        return result;
                    case Next.Yield:
                        await run.Turn.YieldAsync(); // the loop's other connections first
                        break;
                    case Next.WaitForSink:
                        run.Turn.End();
                        var writable = await ends.SinkWritableAsync(run.WriteSequence, cancellationToken);
                        if (!writable.IsComplete) return writable;
                        run.SinkFull = false;
                        run.PipeFullAt = NotFull;
                        break;
                    case Next.WaitForSource:
                        run.Turn.End();
                        var readable = await ends.SourceReadableAsync(run.ReadSequence, cancellationToken);
                        if (!readable.IsComplete) return readable;
                        run.PipeFullAt = NotFull;
                        break;
                    case Next.Stage:
                        long before = drained.Buffered;
                        if (await between!.StepAsync(pipe) is { } stageFailed) return stageFailed;
                        run.Progress |= drained.Buffered != before;
                        afterStage = true;
                        break;
                }
                next = Step(ends, pipe, between, ref run, afterStage, cancellationToken, out result);
            }
        }
        finally { ends.EndWaits(); }
    }

    /// <summary>
    /// The splice loop's iterations up to the next await (or the end). <paramref name="afterStage"/>: the current iteration
    /// resumes after its stage step, at the drain into the sink.
    /// </summary>
    private static Next Step(SpliceEnds ends, SplicePipe pipe, SpliceStage? between, ref Run run, bool afterStage,
        CancellationToken cancellationToken, out BodyResult result)
    {
        result = BodyResult.Complete;
        var drained = between?.Out ?? pipe;
        while (true)
        {
            if (!afterStage)
            {
                if (run.ToWrite <= 0) return Next.Done;
                if (cancellationToken.IsCancellationRequested)
                {
                    result = ends.Cancelled();
                    return Next.Done;
                }
                // An empty pipe that this turn could not drain whole once filled: the turn ends now, not in mid-pipe.
                if (run.ToRead > 0 && pipe.Buffered == 0 && drained.Buffered == 0 && run.Turn.TooShortFor(Math.Min(drained.Capacity, run.ToRead)))
                    return Next.Yield;
                run.Progress = false;
                int readSequence = run.ReadSequence = ends.SourceSequence;
                run.WriteSequence = ends.SinkSequence;
                bool reading = run.ToRead > 0;
                if (pipe.Buffered != run.PipeFullAt)
                {
                    if (Fill(ends, pipe, ref run.ToRead, ref run.Progress) is { } readFailed)
                    {
                        result = readFailed;
                        return Next.Done;
                    }
                    if (!run.Progress && run.ToRead > 0 && pipe.Buffered > 0 && pipe.Buffered < pipe.Capacity) run.PipeFullAt = pipe.Buffered;
                }
                if (reading && run.ToRead == 0) ends.SourceReadToEnd(readSequence);
                if (between is not null && pipe.Buffered > 0 && drained.Buffered < drained.Capacity) return Next.Stage;
            }
            afterStage = false;
            if (drained.Buffered > 0)
            {
                if (!run.SinkFull || run.WriteSequence != run.SinkFullSequence)
                {
                    long offered = run.Turn.Allow(drained.Buffered);
                    if (Drain(ends, drained, offered, out long sent) is { } writeFailed)
                    {
                        result = writeFailed;
                        return Next.Done;
                    }
                    run.SinkFull = sent < offered;
                    run.SinkFullSequence = run.WriteSequence;
                    if (sent > 0)
                    {
                        run.ToWrite -= sent;
                        if (run.Turn.Spend(sent) && run.ToWrite > 0) return Next.Yield;
                        continue;
                    }
                }
                if (!run.Progress) return Next.WaitForSink;
                continue;
            }
            if (!run.Progress) return Next.WaitForSource;
        }
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
