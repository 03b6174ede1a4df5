using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Transport;

/// <summary>Body holes: bytes the kernel moves from a file or a socket to the client at flush time.</summary>
internal sealed partial class ZeroCopyOutputWriter
{
    private HoleSource? _hole;
    private long _holeLength;
    private long _holeSeen;
    private CancellationToken _holeToken;
    private Exception? _holeFailure;
    private bool _expectHole;

    /// <summary>A hole follows the next flushes: send the response head with MSG_MORE so it leaves with the body.</summary>
    public void ExpectHole() => _expectHole = true;

    /// <summary>
    /// From now on GetMemory hands out scratch memory and Advance counts hole bytes; the next flush moves
    /// <paramref name="length"/> bytes from <paramref name="source"/>. Call after the response head was written.
    /// </summary>
    public void BeginHole(HoleSource source, long length, CancellationToken cancellationToken)
    {
        if (_hole is not null) throw new InvalidOperationException("a body hole is already open");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        _hole = source;
        _holeLength = length;
        _holeSeen = 0;
        _holeToken = cancellationToken;
        _holeFailure = null;
    }

    /// <summary>
    /// The hole's outcome after its flush: null when every byte reached the socket. Closes the hole either way.
    /// <paramref name="thrown"/> is what the app's GetMemory/Advance/FlushAsync threw, if anything.
    /// </summary>
    public Exception? EndHole(Exception? thrown = null)
    {
        var failure = _holeFailure;
        if (_hole is not null && failure is null)
            failure = thrown is not null ? Classify(thrown) : new BodyTransferException(BodyTransferFailure.GuardTripped,
                "the body hole was not flushed through this writer (Kestrel buffered it or the writer was completed)");
        failure ??= thrown is null ? null : Classify(thrown);
        _hole = null;
        _holeFailure = null;
        _expectHole = false;
        if (failure is not null) Fault(failure);
        return failure;
    }

    private async ValueTask MoveHoleAsync(CancellationToken flushToken)
    {
        var source = _hole!;
        try
        {
            if (_holeSeen != _holeLength)
                throw new BodyTransferException(BodyTransferFailure.GuardTripped,
                    $"Kestrel passed {_holeSeen} of the hole's {_holeLength} bytes through to the transport: it no longer writes them straight through");
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(_holeToken, flushToken, _connection.Aborted);
            switch (source)
            {
                case FileHoleSource file: await SendFileAsync(file.File, file.Offset, _holeLength, linked.Token); break;
                case DirectFileHoleSource direct: await SendDirectAsync(direct.File, direct.Offset, _holeLength, linked.Token); break;
                default: await SpliceAsync((SocketHoleSource)source, _holeLength, linked.Token); break;
            }
        }
        catch (Exception e)
        {
            _holeFailure = Classify(e);
            Fault(_holeFailure);
        }
        finally
        {
            _hole = null;
            _expectHole = false;
        }
    }

    private Exception Classify(Exception e) => e switch
    {
        BodyTransferException => e,
        OperationCanceledException or ObjectDisposedException or IOException when _connection.IsAborted =>
            new BodyTransferException(BodyTransferFailure.ClientFailed, "the client connection was aborted", e),
        OperationCanceledException => new BodyTransferException(BodyTransferFailure.Canceled, "the body transfer was cancelled", e),
        _ => new BodyTransferException(BodyTransferFailure.ClientFailed, e.Message, e),
    };

    private async ValueTask SendFileAsync(SafeFileHandle file, long offset, long length, CancellationToken cancellationToken)
    {
        bool added = false;
        file.DangerousAddRef(ref added);
        try
        {
            int fileFd = (int)file.DangerousGetHandle();
            long left = length;
            while (left > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                SysResult r;
                int sequence = _connection.ClientSocket.WriteSequence;
                if (!FdLease.TryAcquire(_connection.ClientHandle, out var client)) throw ClientError(new ObjectDisposedException("client socket"));
                using (client) r = Syscalls.SendFile(client.Fd, fileFd, ref offset, Math.Min(left, 0x7fff_f000));
                if (r.Ok)
                {
                    if (r.Bytes == 0)
                        throw new BodyTransferException(BodyTransferFailure.SourceEnded, $"the file ended {left} bytes before the promised length");
                    left -= r.Bytes;
                    _connection.Shared.Metrics.AddBodyBytes(BodyMechanism.Sendfile, BodyDirection.Response, r.Bytes);
                }
                else if (r.WouldBlock) await WaitWritableAsync(sequence, cancellationToken);
                else if (r.Errno is (int)Errno.EPIPE or (int)Errno.ECONNRESET or (int)Errno.ENOTCONN) throw ClientError(r.ToException("sendfile"));
                else throw new BodyTransferException(BodyTransferFailure.SourceFailed, $"sendfile failed: {r.ToException("sendfile").Message}");
            }
        }
        finally { if (added) file.DangerousRelease(); }
    }

    /// <summary>
    /// O_DIRECT file → aligned buffer → client: the only user-space step is the pread into the buffer (no page cache,
    /// no copy into Kestrel's pipe); send(2) goes straight from it. The next reads run on the thread pool meanwhile.
    /// </summary>
    private async ValueTask SendDirectAsync(SafeFileHandle directFile, long offset, long length, CancellationToken cancellationToken)
    {
        await using var reader = new DirectReadAhead(directFile, offset, length);
        long left = length;
        while (await reader.NextAsync() is { } chunk)
        {
            for (int sent = 0; sent < chunk.Count;)
            {
                cancellationToken.ThrowIfCancellationRequested();
                bool more = left > chunk.Count - sent; // more chunks follow: let TCP fill whole segments
                SysResult r;
                int sequence = _connection.ClientSocket.WriteSequence;
                if (!FdLease.TryAcquire(_connection.ClientHandle, out var client)) throw ClientError(new ObjectDisposedException("client socket"));
                using (client) r = Syscalls.Send(client.Fd, chunk.Span[sent..], MSG_DONTWAIT | (more ? MSG_MORE : 0));
                if (r.Ok && r.Bytes > 0)
                {
                    sent += (int)r.Bytes;
                    left -= r.Bytes;
                    _connection.Shared.Metrics.AddBodyBytes(BodyMechanism.DirectIo, BodyDirection.Response, r.Bytes);
                }
                else if (r.Ok) throw ClientError(new IOException("send to the client moved 0 bytes"));
                else if (r.WouldBlock) await WaitWritableAsync(sequence, cancellationToken);
                else throw ClientError(r.ToException("send"));
            }
        }
    }

    /// <summary>
    /// upstream → pipe → client. The pipe's fill level is tracked so that EAGAIN from the upstream side means
    /// "no data yet" (the pipe has room) and EAGAIN from the client side means "socket full". When neither can
    /// move, we wait for the side that blocks; a wait for upstream data also watches the client for errors.
    /// </summary>
    private async ValueTask SpliceAsync(SocketHoleSource hole, long length, CancellationToken cancellationToken)
    {
        var source = hole.Socket;
        // splice honours the socket's own O_NONBLOCK; .NET sockets used asynchronously already have it.
        if (FdLease.TryAcquire(source.SafeHandle, out var lease)) using (lease) Syscalls.SetNonBlocking(lease.Fd);
        var pipe = _connection.RentPipe();
        Loops.LoopSocket? upstream = null;
        try
        {
            long toRead = length, toWrite = length;
            while (toWrite > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                bool progress = false;
                // Readiness snapshots before the syscalls: an edge that comes after them wakes the wait below. The upstream
                // fd joins the loop only at its first wait (a fresh registration starts at 0, and EPOLL_CTL_ADD reports
                // data that is already there), so a body that never waits costs no epoll_ctl.
                int readSequence = upstream?.ReadSequence ?? 0, writeSequence = _connection.ClientSocket.WriteSequence;
                if (toRead > 0 && pipe.Buffered < pipe.Capacity)
                {
                    var r = SpliceFromSource(source, pipe, Math.Min(toRead, pipe.Capacity - pipe.Buffered));
                    if (r.Ok)
                    {
                        if (r.Bytes == 0)
                            throw new BodyTransferException(BodyTransferFailure.SourceEnded, $"the upstream closed {toRead} bytes before the promised length");
                        pipe.Buffered += r.Bytes;
                        toRead -= r.Bytes;
                        progress = true;
                    }
                    else if (!r.WouldBlock)
                        throw new BodyTransferException(BodyTransferFailure.SourceFailed, $"upstream failed: {r.ToException("splice").Message}");
                }
                if (pipe.Buffered > 0)
                {
                    SysResult w;
                    if (!FdLease.TryAcquire(_connection.ClientHandle, out var client)) throw ClientError(new ObjectDisposedException("client socket"));
                    using (client) w = Syscalls.Splice(pipe.ReadFd, client.Fd, pipe.Buffered, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                    if (w.Ok && w.Bytes > 0)
                    {
                        pipe.Buffered -= w.Bytes;
                        toWrite -= w.Bytes;
                        _connection.Shared.Metrics.AddBodyBytes(BodyMechanism.Splice, BodyDirection.Response, w.Bytes);
                        continue;
                    }
                    if (w.Ok) throw ClientError(new IOException("splice to the client moved 0 bytes"));
                    if (!w.WouldBlock) throw ClientError(w.ToException("splice"));
                    // A client that takes nothing is the client's failure (not the upstream's): counted as such by the forwarder.
                    if (!progress) await WithIdleTimeoutAsync(t => WaitWritableAsync(writeSequence, t), hole.IdleTimeout, BodyTransferFailure.ClientFailed, "the client took no byte", cancellationToken);
                    continue;
                }
                if (!progress)
                {
                    // A client that hangs up or resets meanwhile closes the connection, which fails this wait too.
                    var registration = upstream ??= _connection.RegisterSource(source.SafeHandle);
                    await WithIdleTimeoutAsync(t => registration.WaitReadableAsync(readSequence, t), hole.IdleTimeout, BodyTransferFailure.IdleTimeout, "the upstream sent nothing", cancellationToken);
                }
            }
        }
        catch
        {
            _connection.DropPipe(); // it may hold bytes of this broken body
            throw;
        }
        finally
        {
            if (upstream is not null) _connection.UnregisterSource(upstream);
        }
    }

    /// <summary>Runs one readiness wait; if <paramref name="idleTimeout"/> passes first, the body has stalled.</summary>
    private static async ValueTask WithIdleTimeoutAsync(Func<CancellationToken, ValueTask> wait, TimeSpan idleTimeout, BodyTransferFailure failure, string stalled, CancellationToken cancellationToken)
    {
        if (idleTimeout == Timeout.InfiniteTimeSpan)
        {
            await wait(cancellationToken);
            return;
        }
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        idle.CancelAfter(idleTimeout);
        try { await wait(idle.Token); }
        catch (OperationCanceledException e) when (idle.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new BodyTransferException(failure, $"{stalled} for {idleTimeout.TotalMilliseconds:0} ms", e);
        }
    }

    private static SysResult SpliceFromSource(Socket source, SplicePipe pipe, long count)
    {
        if (!FdLease.TryAcquire(source.SafeHandle, out var upstream))
            throw new BodyTransferException(BodyTransferFailure.SourceFailed, "the upstream socket was closed");
        using (upstream) return Syscalls.Splice(upstream.Fd, pipe.WriteFd, count, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    }
}
