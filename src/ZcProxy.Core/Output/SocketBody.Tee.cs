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
    /// upstream → pipe A; tee(A → B); splice(A → file at the sink's offset); splice(B → client). A only ever holds bytes
    /// not yet teed (each tee is followed by writing exactly the teed bytes from A into the file), because tee copies from
    /// the head of A. The file write goes on while the client is slow: only B waits for the client. When the sink gives up
    /// (disk full, its size limit) the bytes still go to the client, moved A → B by splice. Waits and failures are those
    /// of <see cref="MoveAsync"/>.
    /// </summary>
    public override async ValueTask<BodyResult> MoveTeeingAsync(ZeroCopyConnection to, SplicePipe pipe, FileTee tee, CancellationToken cancellationToken)
    {
        var ends = new ResponseEnds(this, to);
        SplicePipe fromUpstream = pipe, toClient = tee.Pipe;
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
                var sent = await SendPrefixAsync(to, cancellationToken);
                if (!sent.IsComplete) return sent;
            }
            long toRead = _left, toWrite = _left, toFile = _left;
            bool flushed = false;
            while (toWrite > 0)
            {
                if (cancellationToken.IsCancellationRequested) return ends.Cancelled();
                bool progress = false;
                int readSequence = ends.SourceSequence, writeSequence = ends.SinkSequence;
                if (SpliceMove.Fill(ends, fromUpstream, ref toRead, ref progress) is { } readFailed) return readFailed;
                if (fromUpstream.Buffered > 0 && toClient.Buffered < toClient.Capacity)
                {
                    // EAGAIN: B has no free slot (it holds bytes, which the client side below drains).
                    var r = sinking
                        ? Syscalls.Tee(fromUpstream.ReadFd, toClient.WriteFd, fromUpstream.Buffered, SPLICE_F_NONBLOCK)
                        : Syscalls.Splice(fromUpstream.ReadFd, toClient.WriteFd, fromUpstream.Buffered, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                    if (r.Ok && r.Bytes > 0)
                    {
                        toClient.Buffered += r.Bytes;
                        if (!sinking) fromUpstream.Buffered -= r.Bytes;
                        else
                        {
                            bool gaveBack;
                            if (direct is null) gaveBack = WriteToFile(fromUpstream, sink, r.Bytes, out sinking);
                            else (gaveBack, sinking) = await ReadIntoDirectAsync(to, fromUpstream, direct, r.Bytes);
                            if (!gaveBack) return BodyResult.Failed(BodyOutcome.TransportFailed, "a pipe did not give back the bytes it held");
                            toFile -= r.Bytes;
                            if (toFile == 0 && sinking && direct is not null)
                            {
                                // The O_DIRECT file is complete before the client's last bytes leave (they wait in the tee's
                                // pipe), as a spliced fill's is: a client that closes on its last byte finds the entry whole.
                                sinking = await direct.FlushAsync();
                                flushed = true;
                                await to.Loop.SwitchTo();
                            }
                        }
                        progress = true;
                    }
                    else if (!r.Ok && !r.WouldBlock)
                        return BodyResult.Failed(BodyOutcome.TransportFailed, r.ToException(sinking ? "tee" : "splice").Message);
                }
                if (toClient.Buffered > 0)
                {
                    if (SpliceMove.Drain(ends, toClient, out long sent) is { } writeFailed) return writeFailed;
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
            if (sinking && direct is not null && !flushed) await direct.FlushAsync(); // a failure gives the fill up, not the response
            return BodyResult.Complete;
        }
        finally { ends.Release(); }
    }

    /// <summary>
    /// Reads the <paramref name="count"/> bytes at the head of <paramref name="pipe"/> (just teed) into the O_DIRECT sink's
    /// buffers (a wait for a buffer runs while a full one is written, on the pool); when the sink gives up, the rest is
    /// read out and dropped. (false, _) only when the pipe would not give its bytes back.
    /// </summary>
    private static async ValueTask<(bool GaveBack, bool Sinking)> ReadIntoDirectAsync(ZeroCopyConnection to, SplicePipe pipe, IDirectFileSink direct, long count)
    {
        while (count > 0)
        {
            var space = await direct.SpaceAsync(count);
            await to.Loop.SwitchTo(); // a wait for a write ends on the pool: the move goes on on its loop, where its sockets' waits are
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
            bool added = false;
            try
            {
                file!.DangerousAddRef(ref added);
                int fd = (int)file.DangerousGetHandle();
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
            catch (ObjectDisposedException)
            {
                sink.SpliceFailed((int)Errno.EBADF);
                sinking = false;
            }
            finally { if (added) file!.DangerousRelease(); }
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
