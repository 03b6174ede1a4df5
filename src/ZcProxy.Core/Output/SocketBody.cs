using System.Buffers;
using System.Runtime.InteropServices;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Upstream;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Output;

/// <summary>
/// An upstream body of known length (Content-Length), or one that ends when the upstream closes (length -1). A
/// known length with nothing prefetched can be spliced: upstream socket → leased pipe → client socket, the bytes
/// never in user space. Otherwise it is copied, never past its length.
/// </summary>
internal sealed partial class SocketBody : UpstreamBody
{
    private const int CopyBufferSize = 64 * 1024;
    private readonly long _length;
    private ReadOnlyMemory<byte> _prefix;
    private long _left;
    private byte[]? _buffer;

    public SocketBody(UpstreamConnection connection, long length, TimeSpan idleTimeout, CancellationToken aborted) : base(connection, idleTimeout, aborted)
    {
        _length = length;
        _left = length;
        // The head reader never keeps more than Content-Length, so the whole prefix belongs to this body.
        _prefix = connection.PrefetchedBody;
    }

    public override long Length => _length;

    /// <summary>A prefix (bytes the head's recv took along) goes first as data, the rest is spliced.</summary>
    public override BodyMechanism? Hole => _length > 0 ? BodyMechanism.Splice : null;

    /// <summary>Only a Content-Length body read to its end, with nothing read past it, leaves the connection at a message boundary.</summary>
    public override bool EndedCleanly => _length >= 0 && _left == 0 && !Connection.OverRead;

    public override async ValueTask<SourceRead> ReadAsync(CancellationToken cancellationToken)
    {
        if (!_prefix.IsEmpty)
        {
            var prefix = _prefix;
            _prefix = default;
            if (_length >= 0) _left -= prefix.Length;
            return SourceRead.Of(prefix);
        }
        if (_left == 0) return SourceRead.End;
        _buffer ??= ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        int want = _length < 0 ? _buffer.Length : (int)Math.Min(_buffer.Length, _left);
        int n;
        try { n = await Reader.ReadAsync(_buffer.AsMemory(0, want), cancellationToken); }
        catch (Exception e) { return Failed(e, cancellationToken); }
        if (n == 0)
            return _length < 0 ? SourceRead.End : SourceRead.Failed(BodyOutcome.SourceEnded, $"the upstream closed with {_left} of {_length} body bytes unsent");
        if (_length >= 0) _left -= n;
        return SourceRead.Of(_buffer.AsMemory(0, n));
    }

    /// <summary>
    /// upstream → pipe → client. The pipe's fill level is tracked so that EAGAIN from the upstream side means
    /// "no data yet" (the pipe has room) and EAGAIN from the client side means "socket full". When neither can
    /// move, we wait for the side that blocks; a client that hangs up meanwhile fails the wait for upstream data.
    /// Each wait is bounded by the body-idle timeout: a stalled upstream timed out, a client that takes nothing failed.
    /// </summary>
    public override async ValueTask<BodyResult> MoveAsync(ZeroCopyConnection to, SplicePipe? pipe, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pipe);
        var source = Connection.Socket;
        // A loop-native upstream socket is non-blocking and registered with this loop already; a .NET one joins the
        // client's loop at its first wait (splice honours the socket's own O_NONBLOCK, which .NET's async sockets have).
        var upstream = Connection.Readiness;
        bool borrowed = upstream is null;
        if (borrowed && FdLease.TryAcquire(source.SafeHandle, out var lease)) using (lease) Syscalls.SetNonBlocking(lease.Fd);
        try
        {
            if (!_prefix.IsEmpty)
            {
                var sent = await SendPrefixAsync(to, cancellationToken);
                if (!sent.IsComplete) return sent;
            }
            long toRead = _left, toWrite = _left;
            while (toWrite > 0)
            {
                if (cancellationToken.IsCancellationRequested) return BodyResult.Failed(BodyOutcome.ClientFailed, "the client connection was aborted");
                bool progress = false;
                // Readiness snapshots before the syscalls: an edge after them ends the waits below. The upstream fd joins the
                // client's loop only at its first wait (a fresh registration starts at 0, and EPOLL_CTL_ADD reports data
                // that is already there), so a body that never waits costs no epoll_ctl.
                int readSequence = upstream?.ReadSequence ?? 0, writeSequence = to.ClientSocket.WriteSequence;
                if (SpliceFromUpstream(source.SafeHandle, pipe, ref toRead, ref progress) is { } readFailed) return readFailed;
                if (pipe.Buffered > 0)
                {
                    if (SpliceToClient(to, pipe, out long sent) is { } writeFailed) return writeFailed;
                    if (sent > 0)
                    {
                        toWrite -= sent;
                        continue;
                    }
                    if (!progress)
                    {
                        var writable = await KernelWaits.ClientWritableAsync(to, writeSequence, IdleTimeout, cancellationToken);
                        if (!writable.IsComplete) return writable;
                    }
                    continue;
                }
                if (!progress)
                {
                    upstream ??= to.RegisterSource(source.SafeHandle);
                    var readable = await KernelWaits.SourceReadableAsync(to, upstream, readSequence, IdleTimeout, cancellationToken);
                    if (!readable.IsComplete) return readable;
                }
            }
            return BodyResult.Complete;
        }
        finally
        {
            if (borrowed && upstream is not null) to.UnregisterSource(upstream);
        }
    }

    /// <summary>
    /// upstream → pipe: one non-blocking splice when the pipe has room. Null: go on (<paramref name="progress"/> set when
    /// bytes moved; EAGAIN is no progress); otherwise how the body ended.
    /// </summary>
    private static BodyResult? SpliceFromUpstream(SafeHandle source, SplicePipe pipe, ref long toRead, ref bool progress)
    {
        if (toRead <= 0 || pipe.Buffered >= pipe.Capacity) return null;
        if (!FdLease.TryAcquire(source, out var from)) return BodyResult.Failed(BodyOutcome.SourceFailed, "the upstream socket was closed");
        SysResult r;
        using (from) r = Syscalls.Splice(from.Fd, pipe.WriteFd, Math.Min(toRead, pipe.Capacity - pipe.Buffered), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (!r.Ok) return r.WouldBlock ? null : BodyResult.Failed(BodyOutcome.SourceFailed, $"upstream failed: {r.ToException("splice").Message}");
        if (r.Bytes == 0) return BodyResult.Failed(BodyOutcome.SourceEnded, $"the upstream closed {toRead} bytes before the promised length");
        pipe.Buffered += r.Bytes;
        toRead -= r.Bytes;
        progress = true;
        return null;
    }

    /// <summary>
    /// pipe → client: one non-blocking splice of what the pipe holds, counted as spliced body bytes. Null: go on
    /// (<paramref name="sent"/> is 0 when the client socket is full); otherwise how the body ended.
    /// </summary>
    private BodyResult? SpliceToClient(ZeroCopyConnection to, SplicePipe pipe, out long sent)
    {
        sent = 0;
        if (!FdLease.TryAcquire(to.ClientHandle, out var client)) return BodyResult.Failed(BodyOutcome.ClientFailed, "the client socket was closed");
        SysResult w;
        using (client) w = Syscalls.Splice(pipe.ReadFd, client.Fd, pipe.Buffered, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (w.Ok && w.Bytes > 0)
        {
            sent = w.Bytes;
            pipe.Buffered -= sent;
            _left -= sent;
            to.Shared.Metrics.AddBodyBytes(BodyMechanism.Splice, BodyDirection.Response, sent);
            return null;
        }
        if (w.WouldBlock) return null;
        return BodyResult.Failed(BodyOutcome.ClientFailed, w.Ok ? "splice to the client moved 0 bytes" : $"client connection failed: {w.ToException("splice").Message}");
    }

    /// <summary>The body bytes the head's recv took along, sent as data ahead of the splice (counted as copied: they were in user space).</summary>
    private async ValueTask<BodyResult> SendPrefixAsync(ZeroCopyConnection to, CancellationToken cancellationToken)
    {
        while (!_prefix.IsEmpty)
        {
            if (cancellationToken.IsCancellationRequested) return BodyResult.Failed(BodyOutcome.ClientFailed, "the client connection was aborted");
            int sequence = to.ClientSocket.WriteSequence;
            SysResult r;
            if (!FdLease.TryAcquire(to.ClientHandle, out var client)) return BodyResult.Failed(BodyOutcome.ClientFailed, "the client socket was closed");
            using (client) r = Syscalls.Send(client.Fd, _prefix.Span, MSG_DONTWAIT | MSG_MORE);
            if (r.Ok && r.Bytes > 0)
            {
                _prefix = _prefix[(int)r.Bytes..];
                _left -= r.Bytes;
                to.Shared.Metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Response, r.Bytes);
            }
            else if (r.WouldBlock)
            {
                var ready = await KernelWaits.ClientWritableAsync(to, sequence, IdleTimeout, cancellationToken);
                if (!ready.IsComplete) return ready;
            }
            else return BodyResult.Failed(BodyOutcome.ClientFailed, r.Ok ? "send to the client moved 0 bytes" : $"client connection failed: {r.ToException("send").Message}");
        }
        return BodyResult.Complete;
    }

    public override ValueTask DisposeAsync()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return base.DisposeAsync();
    }
}
