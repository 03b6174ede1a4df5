using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Output;

/// <summary>
/// A byte range of a file opened with O_DIRECT (<see cref="FileRangeSending"/> chose it for a big cold range), so that a big body does
/// not evict hot small entries from the page cache (nginx's directio + aio). Read ahead into aligned buffers
/// (<see cref="DirectReadAhead"/>); the kernel move sends from those buffers straight to the client socket, the copy
/// passes them to the response body. Counted as "directio" either way. Owns the O_DIRECT handle.
/// </summary>
internal sealed class DirectFileSource(SafeFileHandle directFile, long offset, long length) : BodySource
{
    private DirectReadAhead? _copyReader;

    /// <summary>Opens <paramref name="path"/> with O_DIRECT; null when the file system refuses it (tmpfs) or the file is no longer <paramref name="expectedFileLength"/> long.</summary>
    public static DirectFileSource? TryOpen(string path, long expectedFileLength, long offset, long length)
    {
        try
        {
            var handle = Syscalls.Open(path, O_RDONLY | O_DIRECT);
            if (RandomAccess.GetLength(handle) == expectedFileLength) return new DirectFileSource(handle, offset, length);
            handle.Dispose();
        }
        catch (ErrnoException) { }
        return null;
    }

    public override long Length => length;
    public override BodyMechanism? Hole => BodyMechanism.DirectIo;
    public override BodyMechanism CopiedAs => BodyMechanism.DirectIo;

    public override async ValueTask<SourceRead> ReadAsync(CancellationToken cancellationToken)
    {
        _copyReader ??= new DirectReadAhead(directFile, offset, length);
        var (chunk, result) = await _copyReader.NextAsync();
        if (!result.IsComplete) return new SourceRead(default, result);
        return chunk is { } c ? SourceRead.Of(c.Memory) : SourceRead.End;
    }

    /// <summary>
    /// O_DIRECT file → aligned buffer → client: the only user-space step is the pread into the buffer (no page cache,
    /// no copy into Kestrel's pipe); send(2) goes straight from it. The next reads run on the thread pool meanwhile.
    /// </summary>
    public override async ValueTask<BodyResult> MoveAsync(ZeroCopyConnection to, SplicePipe? pipe, CancellationToken cancellationToken)
    {
        await using var reader = new DirectReadAhead(directFile, offset, length);
        long left = length;
        var turn = new LoopTurn();
        while (true)
        {
            var (next, read) = await reader.NextAsync();
            if (!read.IsComplete) return read;
            if (next is not { } chunk) return BodyResult.Complete;
            for (int sent = 0; sent < chunk.Count;)
            {
                if (cancellationToken.IsCancellationRequested) return BodyResult.Failed(BodyOutcome.ClientFailed, "the client connection was aborted");
                bool more = left > chunk.Count - sent; // more chunks follow: let TCP fill whole segments
                SysResult r;
                int sequence = to.ClientSocket.WriteSequence;
                if (!to.TryLeaseClient(out var client)) return BodyResult.Failed(BodyOutcome.ClientFailed, "the client socket was closed");
                int count = (int)turn.Allow(chunk.Count - sent);
                using (client) r = Syscalls.Send(client.Fd, chunk.Span.Slice(sent, count), MSG_DONTWAIT | (more ? MSG_MORE : 0));
                if (r.Ok && r.Bytes > 0)
                {
                    sent += (int)r.Bytes;
                    left -= r.Bytes;
                    to.Shared.Metrics.AddBodyBytes(BodyMechanism.DirectIo, BodyDirection.Response, r.Bytes);
                    if (turn.Spend(r.Bytes) && left > 0) await turn.YieldAsync(); // the loop's other connections first
                }
                else if (r.WouldBlock)
                {
                    turn.End();
                    var ready = await KernelWaits.ClientWritableAsync(to, sequence, Timeout.InfiniteTimeSpan, cancellationToken);
                    if (!ready.IsComplete) return ready;
                }
                else return BodyResult.Failed(BodyOutcome.ClientFailed, r.Ok ? "send to the client moved 0 bytes" : $"client connection failed: {r.ToException("send").Message}");
            }
        }
    }

    public override async ValueTask DisposeAsync()
    {
        if (_copyReader is { } reader)
        {
            _copyReader = null;
            await reader.DisposeAsync(); // waits for reads in flight, which use the handle
        }
        directFile.Dispose();
    }
}
