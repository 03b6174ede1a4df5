using System.Buffers;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;

namespace ZcProxy.Core.Output;

/// <summary>
/// A byte range of a file sent from the page cache (<see cref="FileRangeSending"/> chose it): moved with sendfile(2), or copied with preads.
/// The file handle stays the caller's. Reads and sendfiles of pages the page cache holds run where the caller is (an event
/// loop too), the others on the thread pool (<see cref="LoopFileIo"/>). <paramref name="withHead"/>: the range offers no
/// sendfile of its own, so it is read and leaves with the response head in one write (<see cref="FileRangeSending"/> asks
/// it below <see cref="SendfileFrom"/>; nginx writes a head with writev, then sendfile). <paramref name="seenResident"/>: the
/// caller has found every page of the range in the page cache (<see cref="FileRangeSending"/>'s cachestat, at
/// <paramref name="seenAt"/>, Environment.TickCount64; 0: now), so the sendfiles need not ask again for a while
/// (<see cref="SeenResidentForMs"/>).
/// </summary>
internal sealed class FileRangeSource(SafeFileHandle file, long offset, long length, bool withHead = false, bool seenResident = false,
    long seenAt = 0) : BodySource
{
    private const int CopyBufferSize = 128 * 1024;
    /// <summary>
    /// The most one sendfile call is asked to move, as nginx's <c>sendfile_max_chunk</c> (2m by default): the page-cache
    /// look-up before each call covers exactly the bytes it may read (a socket takes at most its send buffer anyway).
    /// </summary>
    private const long SendfileChunk = 2 << 20;
    /// <summary>
    /// Smaller bodies are better read and sent with the head than with sendfile: a sendfile costs the head its own write, a
    /// page-cache probe and a sendfile call (a 1 KiB hit took 4 system calls; read and sent with the head, 3).
    /// </summary>
    internal const long SendfileFrom = 16 * 1024;
    private static volatile bool s_noCachedReads;
    /// <summary>
    /// How long a page-cache look-up is trusted: the sendfiles of the bytes it found resident run on the loop without a
    /// cachestat of their own for this long after it. A cachestat walks the page cache's entries of every page it covers
    /// (~2.5–9 µs per MiB here, docs/direct-io.md), so one per sendfile walked a resident hit a second time after the
    /// range's own look-up (FileRangeSending). Not for the whole move: a slow client's hit lasts minutes, and pages idle that
    /// long are paged out (DAMON here, reclaim anywhere); 500 ms covers a resident 256 MiB hit at 512 MB/s and more.
    /// </summary>
    internal const long SeenResidentForMs = 500;

    /// <summary>The file position up to which the page cache was seen to hold the range, and when (Environment.TickCount64).</summary>
    private long _seenResidentTo = seenResident ? offset + length : offset;
    private long _seenAt = seenResident ? (seenAt > 0 ? seenAt : Environment.TickCount64) : 0;
    private long _copied;
    private byte[]? _buffer;
    /// <summary>The move found pages of the range missing: its sendfiles off the loop have asked the kernel to read ahead.</summary>
    private bool _readingAhead;

    public override long Length => length;
    public override BodyMechanism? Hole => withHead ? null : BodyMechanism.Sendfile;

    public override async ValueTask<SourceRead> ReadAsync(CancellationToken cancellationToken)
    {
        long left = length - _copied;
        if (left == 0) return SourceRead.End;
        _buffer ??= ArrayPool<byte>.Shared.Rent((int)Math.Min(CopyBufferSize, length));
        var into = _buffer.AsMemory(0, (int)Math.Min(_buffer.Length, left));
        long at = offset + _copied;
        int n;
        // Chosen when the bytes are small or resident, so normally in the page cache: a plain pread beats a thread-pool
        // hop. Pages that are not (LoopFileIo) are read on the pool, never on an event loop; there a small range is read with
        // one preadv2(RWF_NOWAIT), which both asks the page cache and reads (EAGAIN: some page is missing).
        try
        {
            bool missing = false;
            if (TryReadCached(into.Span, at, out missing) is { } cached) n = cached;
            else n = missing || LoopFileIo.MustLeaveLoop(file, at, into.Length)
                ? await RandomAccess.ReadAsync(file, into, at, CancellationToken.None)
                : RandomAccess.Read(file, into.Span, at);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException) { return SourceRead.Failed(BodyOutcome.SourceFailed, $"file read failed: {e.Message}"); }
        if (n == 0) return SourceRead.Failed(BodyOutcome.SourceEnded, $"the file ended {left} bytes before the promised length");
        _copied += n;
        return SourceRead.Of(_buffer.AsMemory(0, n));
    }

    /// <summary>
    /// On an event loop, the bytes at <paramref name="at"/> that the page cache holds; null elsewhere, and when the first of
    /// them is not cached (<paramref name="missing"/>: the read goes to the pool without probing again) or the file system
    /// cannot tell (then LoopFileIo's probe decides, as for any read).
    /// </summary>
    private int? TryReadCached(Span<byte> into, long at, out bool missing)
    {
        missing = false;
        if (!EventLoop.OnAnyLoopThread || s_noCachedReads) return null;
        var r = Syscalls.PreadCached(file, into, at);
        if (r.Ok) return (int)r.Bytes;
        if (r.Errno == (int)Errno.EAGAIN)
        {
            missing = true;
            return null;
        }
        if (r.Errno is (int)Errno.EOPNOTSUPP or (int)Errno.ENOSYS or (int)Errno.EINVAL)
        {
            s_noCachedReads = true; // this kernel or file system cannot read without waiting: probed first, as before
            return null;
        }
        throw new IOException(r.ToException("preadv2").Message);
    }

    public override async ValueTask<BodyResult> MoveAsync(ZeroCopyConnection to, SplicePipe? pipe, CancellationToken cancellationToken)
    {
        // The file stays open for the whole move (a file handle's close waits for its references; it never spins like a socket's).
        if (!FdLease.TryAcquire(file, out var lease)) return BodyResult.Failed(BodyOutcome.SourceFailed, "the file was closed");
        using (lease)
        {
            int fileFd = lease.Fd;
            long position = offset, left = length;
            var turn = new LoopTurn();
            while (left > 0)
            {
                if (cancellationToken.IsCancellationRequested) return BodyResult.Failed(BodyOutcome.ClientFailed, "the client connection was aborted");
                long count = turn.Allow(Math.Min(left, SendfileChunk));
                int sequence = to.ClientSocket.WriteSequence;
                // A sendfile reads the pages it sends: when some are not in memory it waits for the disk, so that call runs
                // on the thread pool instead of the loop (LoopFileIo); the calls after it run where that await resumed (the
                // pool, usually) until the socket is full, and the move comes back to the loop with the wait for the client.
                long from = position;
                SysResult? sent;
                if (MustLeaveLoop(from, count))
                {
                    sent = await Task.Run(() =>
                    {
                        ReadAhead(fileFd);
                        return SendChunk(to, fileFd, from, count);
                    });
                }
                else sent = SendChunk(to, fileFd, from, count);
                if (sent is not { } r) return BodyResult.Failed(BodyOutcome.ClientFailed, "the client socket was closed");
                if (r.Ok)
                {
                    if (r.Bytes == 0) return BodyResult.Failed(BodyOutcome.SourceEnded, $"the file ended {left} bytes before the promised length");
                    position += r.Bytes;
                    left -= r.Bytes;
                    to.Shared.Metrics.AddBodyBytes(BodyMechanism.Sendfile, BodyDirection.Response, r.Bytes);
                    if (turn.Spend(r.Bytes) && left > 0) await turn.YieldAsync(); // the loop's other connections first
                }
                else if (r.WouldBlock)
                {
                    turn.End();
                    var ready = await KernelWaits.ClientWritableAsync(to, sequence, Timeout.InfiniteTimeSpan, cancellationToken);
                    if (!ready.IsComplete) return ready;
                }
                else if (r.Errno is (int)Errno.EPIPE or (int)Errno.ECONNRESET or (int)Errno.ENOTCONN)
                    return BodyResult.Failed(BodyOutcome.ClientFailed, $"client connection failed: {r.ToException("sendfile").Message}");
                else return BodyResult.Failed(BodyOutcome.SourceFailed, r.ToException("sendfile").Message);
            }
            return BodyResult.Complete;
        }
    }

    /// <summary>
    /// Whether the sendfile of [<paramref name="from"/>, +<paramref name="count"/>) must run on the thread pool
    /// (<see cref="LoopFileIo.MustLeaveLoop"/>); bytes seen resident in the last <see cref="SeenResidentForMs"/> are not
    /// asked about again.
    /// </summary>
    private bool MustLeaveLoop(long from, long count)
    {
        if (!EventLoop.OnAnyLoopThread) return false; // off the loops a sendfile may wait for the disk
        long now = Environment.TickCount64;
        if (from + count <= _seenResidentTo && now - _seenAt <= SeenResidentForMs) return false;
        if (LoopFileIo.MustLeaveLoop(file, from, count)) return true;
        _seenResidentTo = from + count;
        _seenAt = now;
        return false;
    }

    /// <summary>Tests see each read-ahead asked (posix_fadvise SEQUENTIAL of the file).</summary>
    internal static Action? ReadAheadAsked;

    /// <summary>
    /// Off the loops, once per move: tells the kernel the file is read sequentially (posix_fadvise SEQUENTIAL: twice the
    /// device's readahead window for this open file), so the sendfiles' own readahead keeps more of the range in flight
    /// while they wait for the disk. Not WILLNEED: the kernel reads WILLNEED pages into 4 KiB folios, and every later hit
    /// paid for that: a 256 MiB file read back so cost 33-46 CPU-ms/GB in its sendfiles' page-cache reads against 16-21
    /// read back by sendfile (large folios), and 1.1-2.9 ms per cachestat against 23-47 µs (docs/direct-io.md).
    /// </summary>
    private void ReadAhead(int fileFd)
    {
        if (_readingAhead) return;
        _readingAhead = true;
        ReadAheadAsked?.Invoke();
        Syscalls.AdviseSequential(fileFd);
    }

    /// <summary>One sendfile(2) of up to <paramref name="count"/> bytes from <paramref name="from"/>; null when the client socket is closed.</summary>
    private static SysResult? SendChunk(ZeroCopyConnection to, int fileFd, long from, long count)
    {
        if (!to.TryLeaseClient(out var client)) return null;
        using (client) return Syscalls.SendFile(client.Fd, fileFd, ref from, count);
    }

    public override ValueTask DisposeAsync()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return ValueTask.CompletedTask;
    }
}
