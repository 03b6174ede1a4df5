using System.Buffers;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Native;

namespace ZcProxy.Core.Output;

/// <summary>
/// A byte range of a file sent from the page cache (<see cref="FileRangeSending"/> chose it): moved with sendfile(2), or copied with preads.
/// The file handle stays the caller's.
/// </summary>
internal sealed class FileRangeSource(SafeFileHandle file, long offset, long length) : BodySource
{
    private const int CopyBufferSize = 128 * 1024;
    private const long MaxSendfileChunk = 0x7fff_f000; // what Linux moves in one sendfile call at most
    private long _copied;
    private byte[]? _buffer;

    public override long Length => length;
    public override BodyMechanism? Hole => BodyMechanism.Sendfile;

    public override ValueTask<SourceRead> ReadAsync(CancellationToken cancellationToken)
    {
        long left = length - _copied;
        if (left == 0) return ValueTask.FromResult(SourceRead.End);
        _buffer ??= ArrayPool<byte>.Shared.Rent((int)Math.Min(CopyBufferSize, length));
        int n;
        // Chosen when the bytes are small or resident, so normally in the page cache: a plain pread beats a thread-pool hop.
        try { n = RandomAccess.Read(file, _buffer.AsSpan(0, (int)Math.Min(_buffer.Length, left)), offset + _copied); }
        catch (Exception e) when (e is IOException or ObjectDisposedException) { return ValueTask.FromResult(SourceRead.Failed(BodyOutcome.SourceFailed, $"file read failed: {e.Message}")); }
        if (n == 0) return ValueTask.FromResult(SourceRead.Failed(BodyOutcome.SourceEnded, $"the file ended {left} bytes before the promised length"));
        _copied += n;
        return ValueTask.FromResult(SourceRead.Of(_buffer.AsMemory(0, n)));
    }

    public override async ValueTask<BodyResult> MoveAsync(ZeroCopyConnection to, SplicePipe? pipe, CancellationToken cancellationToken)
    {
        // The file stays open for the whole move (a file handle's close waits for its references; it never spins like a socket's).
        bool added = false;
        try { file.DangerousAddRef(ref added); }
        catch (ObjectDisposedException) { return BodyResult.Failed(BodyOutcome.SourceFailed, "the file was closed"); }
        try
        {
            int fileFd = (int)file.DangerousGetHandle();
            long position = offset, left = length;
            while (left > 0)
            {
                if (cancellationToken.IsCancellationRequested) return BodyResult.Failed(BodyOutcome.ClientFailed, "the client connection was aborted");
                SysResult r;
                int sequence = to.ClientSocket.WriteSequence;
                if (!FdLease.TryAcquire(to.ClientHandle, out var client)) return BodyResult.Failed(BodyOutcome.ClientFailed, "the client socket was closed");
                using (client) r = Syscalls.SendFile(client.Fd, fileFd, ref position, Math.Min(left, MaxSendfileChunk));
                if (r.Ok)
                {
                    if (r.Bytes == 0) return BodyResult.Failed(BodyOutcome.SourceEnded, $"the file ended {left} bytes before the promised length");
                    left -= r.Bytes;
                    to.Shared.Metrics.AddBodyBytes(BodyMechanism.Sendfile, BodyDirection.Response, r.Bytes);
                }
                else if (r.WouldBlock)
                {
                    var ready = await KernelWaits.ClientWritableAsync(to, sequence, Timeout.InfiniteTimeSpan, cancellationToken);
                    if (!ready.IsComplete) return ready;
                }
                else if (r.Errno is (int)Errno.EPIPE or (int)Errno.ECONNRESET or (int)Errno.ENOTCONN)
                    return BodyResult.Failed(BodyOutcome.ClientFailed, $"client connection failed: {r.ToException("sendfile").Message}");
                else return BodyResult.Failed(BodyOutcome.SourceFailed, r.ToException("sendfile").Message);
            }
            return BodyResult.Complete;
        }
        finally { if (added) file.DangerousRelease(); }
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
