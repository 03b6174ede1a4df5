using System.Buffers;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Native;
using ZcProxy.Core.Transport.Loops;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Output;

/// <summary>The teeing move: a spliced body that is also written to a file (a cache fill) without entering user space.</summary>
internal sealed partial class SocketBody
{
    public override bool CanTee => Hole == BodyMechanism.Splice;

    /// <summary>
    /// upstream → pipe A; tee(A → B); splice(A → file at the sink's offset); splice(B → client): the one splice loop
    /// (<see cref="SpliceMove"/>) with a <see cref="TeeStage"/> between A and B. Waits and failures are those of
    /// <see cref="MoveAsync"/>.
    /// </summary>
    public override async ValueTask<BodyResult> MoveTeeingAsync(ZeroCopyConnection to, SplicePipe pipe, FileTee tee, CancellationToken cancellationToken)
    {
        var ends = Ends(to);
        var sink = tee.Sink;
        var direct = sink.Direct; // asked before the first byte: an O_DIRECT fill takes every byte, the prefix too
        bool sinking = true;
        try
        {
            if (!_prefix.IsEmpty)
            {
                // In user space already (the head's recv took it along): written like a copied fill.
                if (direct is null) sink.Write(_prefix.Span);
                else sinking = await CopyToDirectAsync(direct, _prefix);
                var sent = await SendPrefixAsync(ends, cancellationToken);
                if (!sent.IsComplete) return sent;
            }
            return await SpliceMove.RunAsync(ends, pipe, _left, cancellationToken, new TeeStage(to, tee, sinking, _left));
        }
        finally { ends.Release(); }
    }

    /// <summary>
    /// tee(A → B) and splice(A → file). A only ever holds bytes not yet teed (each tee is followed by writing exactly the
    /// teed bytes from A into the file), because tee copies from the head of A. The file write goes on while the client
    /// is slow: only B waits for the client. When the sink gives up (disk full, its size limit) the bytes still go to
    /// the client, moved A → B by splice.
    /// </summary>
    private sealed class TeeStage(ZeroCopyConnection to, FileTee tee, bool sinking, long toFile) : SpliceStage
    {
        private readonly IDirectFileSink? _direct = tee.Sink.Direct;
        private bool _sinking = sinking, _flushed;
        private long _toFile = toFile;

        public override SplicePipe Out => tee.Pipe;

        public override async ValueTask<BodyResult?> StepAsync(SplicePipe from)
        {
            // EAGAIN: B has no free slot (it holds bytes, which the client side drains).
            var r = _sinking
                ? Syscalls.Tee(from.ReadFd, Out.WriteFd, from.Buffered, SPLICE_F_NONBLOCK)
                : Syscalls.Splice(from.ReadFd, Out.WriteFd, from.Buffered, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (!r.Ok || r.Bytes == 0)
                return r.Ok || r.WouldBlock ? null : BodyResult.Failed(BodyOutcome.TransportFailed, r.ToException(_sinking ? "tee" : "splice").Message);
            Out.Buffered += r.Bytes;
            if (!_sinking)
            {
                from.Buffered -= r.Bytes;
                return null;
            }
            bool gaveBack;
            if (_direct is null) gaveBack = WriteToFile(from, tee.Sink, r.Bytes, out _sinking);
            else (gaveBack, _sinking) = await ReadIntoDirectAsync(to, from, _direct, r.Bytes);
            if (!gaveBack) return BodyResult.Failed(BodyOutcome.TransportFailed, "a pipe did not give back the bytes it held");
            _toFile -= r.Bytes;
            if (_toFile == 0 && _sinking && _direct is not null)
            {
                // The O_DIRECT file is complete before the client's last bytes leave (they wait in the tee's
                // pipe), as a spliced fill's is: a client that closes on its last byte finds the entry whole.
                _sinking = await _direct.FlushAsync();
                _flushed = true;
                await to.Loop.SwitchTo();
            }
            return null;
        }

        /// <summary>A failure of the last flush gives the fill up, not the response.</summary>
        public override async ValueTask CompleteAsync()
        {
            if (_sinking && _direct is not null && !_flushed)
            {
                await _direct.FlushAsync();
                await to.Loop.SwitchTo(); // the flush's last write ended on an I/O thread: the response ends on its loop
            }
        }
    }

    /// <summary>
    /// Reads the <paramref name="count"/> bytes at the head of <paramref name="pipe"/> (just teed) into the O_DIRECT sink's
    /// buffers (a wait for a buffer, when all the sink's writes in flight are out, ends on the I/O thread that finished
    /// one); when the sink gives up, the rest is read out and dropped. (false, _) only when the pipe would not give its bytes back.
    /// </summary>
    private static async ValueTask<(bool GaveBack, bool Sinking)> ReadIntoDirectAsync(ZeroCopyConnection to, SplicePipe pipe, IDirectFileSink direct, long count)
    {
        while (count > 0)
        {
            var space = await direct.SpaceAsync(count);
            await to.Loop.SwitchTo(); // a wait for a write ends on an I/O thread: the move goes on on its loop, where its sockets' waits are
            if (space.IsEmpty) return (Drop(pipe, count), false);
            var r = Syscalls.Read(pipe.ReadFd, space.Span[..(int)Math.Min(space.Length, count)]);
            if (!r.Ok || r.Bytes == 0) return (false, false);
            pipe.Buffered -= r.Bytes;
            count -= r.Bytes;
            direct.Filled((int)r.Bytes);
        }
        return (true, true);
    }

    /// <summary>Copies bytes already in user space into the O_DIRECT sink's buffers; false when the sink gave up.</summary>
    private static async ValueTask<bool> CopyToDirectAsync(IDirectFileSink direct, ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
        {
            var space = await direct.SpaceAsync(data.Length);
            if (space.IsEmpty) return false;
            int n = Math.Min(space.Length, data.Length);
            data.Span[..n].CopyTo(space.Span);
            direct.Filled(n);
            data = data[n..];
        }
        return true;
    }

    /// <summary>
    /// Writes the <paramref name="count"/> bytes at the head of <paramref name="pipe"/> (just teed) into the sink's file;
    /// when the sink cannot take them or the kernel refuses, they are read out and dropped instead, and
    /// <paramref name="sinking"/> turns false. False only when the pipe would not give its bytes back.
    /// </summary>
    private static bool WriteToFile(SplicePipe pipe, IBodyFileSink sink, long count, out bool sinking)
    {
        sinking = sink.TryTake(count, out var file, out long offset);
        if (sinking)
        {
            if (!FdLease.TryAcquire(file!, out var lease))
            {
                sink.SpliceFailed((int)Errno.EBADF);
                sinking = false;
            }
            else using (lease)
            {
                int fd = lease.Fd;
                while (count > 0)
                {
                    // The pipe holds these bytes, so this does not wait on it; a file write may wait for the disk, as a write(2) would.
                    var r = Syscalls.SpliceToFile(pipe.ReadFd, fd, ref offset, count, SPLICE_F_MOVE);
                    if (!r.Ok || r.Bytes == 0)
                    {
                        sink.SpliceFailed(r.Ok ? (int)Errno.EIO : r.Errno);
                        sinking = false;
                        break;
                    }
                    pipe.Buffered -= r.Bytes;
                    count -= r.Bytes;
                    sink.Spliced(r.Bytes);
                }
            }
        }
        return count == 0 || Drop(pipe, count);
    }

    /// <summary>Reads and drops bytes the client already has a copy of (only after the file side failed).</summary>
    private static bool Drop(SplicePipe pipe, long count)
    {
        var scratch = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (count > 0)
            {
                var r = Syscalls.Read(pipe.ReadFd, scratch.AsSpan(0, (int)Math.Min(scratch.Length, count)));
                if (!r.Ok || r.Bytes == 0) return false;
                pipe.Buffered -= r.Bytes;
                count -= r.Bytes;
            }
            return true;
        }
        finally { ArrayPool<byte>.Shared.Return(scratch); }
    }
}
