using System.Runtime.InteropServices;
using ZcProxy.Core.Transport;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Output;

/// <summary>
/// The two sockets of a <see cref="SpliceMove"/> and what their events mean: a response body (upstream → client,
/// <see cref="SocketBody"/>) or a request body (client → upstream, Forwarding's RequestBodySplice). The move itself
/// only splices and waits; the ends say how to wait, whose failure a failed call is, and where the bytes count.
/// </summary>
internal abstract class SpliceEnds
{
    /// <summary>The socket bytes come from; leased around each call.</summary>
    public abstract SafeHandle Source { get; }
    /// <summary>The socket bytes go to; leased around each call.</summary>
    public abstract SafeHandle Sink { get; }
    /// <summary>The source's read readiness sequence, taken before the splice that may find it empty.</summary>
    public abstract int SourceSequence { get; }
    /// <summary>The sink's write readiness sequence, taken before the splice that may find it full.</summary>
    public abstract int SinkSequence { get; }

    /// <summary>Until the source has bytes after <paramref name="sequence"/>; anything but Complete ends the move.</summary>
    public abstract ValueTask<BodyResult> SourceReadableAsync(int sequence, CancellationToken cancellationToken);
    /// <summary>Until the sink takes bytes again after <paramref name="sequence"/>; anything but Complete ends the move.</summary>
    public abstract ValueTask<BodyResult> SinkWritableAsync(int sequence, CancellationToken cancellationToken);

    public abstract BodyResult SourceFailed(string reason);
    /// <summary>The source finished sending (FIN) with <paramref name="left"/> bytes of the promised length still to come.</summary>
    public abstract BodyResult SourceEnded(long left);
    public abstract BodyResult SinkFailed(string reason);
    /// <summary>The move's token was cancelled (the client connection aborted, or the caller stopped the move).</summary>
    public abstract BodyResult Cancelled();

    /// <summary><paramref name="bytes"/> left the source for the pipe.</summary>
    public virtual void Taken(long bytes) { }
    /// <summary><paramref name="bytes"/> reached the sink: counted as spliced.</summary>
    public abstract void Delivered(long bytes);
}

/// <summary>
/// The one splice loop: exactly a given number of bytes from a source socket through a leased pipe into a sink
/// socket, with non-blocking splice(2) calls on the connection's event loop. The pipe's fill level is tracked so that
/// EAGAIN from the source side means "no data yet" (the pipe has room) and EAGAIN from the sink side means "socket
/// full". When neither can move, it waits for the side that blocks (the ends bound each wait by an idle timeout).
/// </summary>
internal static class SpliceMove
{
    public static async ValueTask<BodyResult> RunAsync(SpliceEnds ends, SplicePipe pipe, long length, CancellationToken cancellationToken)
    {
        long toRead = length, toWrite = length;
        while (toWrite > 0)
        {
            if (cancellationToken.IsCancellationRequested) return ends.Cancelled();
            bool progress = false;
            // Readiness snapshots before the syscalls: an edge after them ends the waits below.
            int readSequence = ends.SourceSequence, writeSequence = ends.SinkSequence;
            if (Fill(ends, pipe, ref toRead, ref progress) is { } readFailed) return readFailed;
            if (pipe.Buffered > 0)
            {
                if (Drain(ends, pipe, out long sent) is { } writeFailed) return writeFailed;
                if (sent > 0)
                {
                    toWrite -= sent;
                    continue;
                }
                if (!progress)
                {
                    var writable = await ends.SinkWritableAsync(writeSequence, cancellationToken);
                    if (!writable.IsComplete) return writable;
                }
                continue;
            }
            if (!progress)
            {
                var readable = await ends.SourceReadableAsync(readSequence, cancellationToken);
                if (!readable.IsComplete) return readable;
            }
        }
        return BodyResult.Complete;
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
    /// pipe → sink: one non-blocking splice of what the pipe holds, counted as delivered. Null: go on
    /// (<paramref name="sent"/> is 0 when the sink is full); otherwise how the move ended.
    /// </summary>
    public static BodyResult? Drain(SpliceEnds ends, SplicePipe pipe, out long sent)
    {
        sent = 0;
        if (!FdLease.TryAcquire(ends.Sink, out var to)) return ends.SinkFailed("its socket was closed");
        SysResult w;
        using (to) w = Syscalls.Splice(pipe.ReadFd, to.Fd, pipe.Buffered, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
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
