using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Transport;
using ZcProxy.Native;

namespace ZcProxy.Core.Caching;

/// <summary>
/// Sends a big stored body read with O_DIRECT, so it does not evict hot small entries from the page cache
/// (nginx's directio + aio). Aligned buffers in a ring: several preads are in flight on the thread pool while the
/// bytes of the oldest completed one are sent (<see cref="DirectReadAhead"/>: while one chunk goes out, the next
/// two reads are already running).
/// </summary>
internal static class DirectIoSender
{
    public const int ChunkSize = DirectReadAhead.ChunkSize;
    public const int ReadsInFlight = DirectReadAhead.ReadsInFlight;

    /// <summary>Opens the entry file with O_DIRECT; null when the file system refuses it (tmpfs) or the file changed.</summary>
    public static SafeFileHandle? TryOpen(string path, long expectedLength)
    {
        try
        {
            var handle = Syscalls.Open(path, LinuxConstants.O_RDONLY | LinuxConstants.O_DIRECT);
            if (RandomAccess.GetLength(handle) == expectedLength) return handle;
            handle.Dispose();
        }
        catch (ErrnoException) { }
        return null;
    }

    /// <summary>
    /// Copies file bytes [offset, offset+length) into the response writer: the path for connections the zero-copy
    /// transport does not serve (there IZeroCopyResponseFeature.SendDirectIoAsync sends from the aligned buffers
    /// without this copy). Throws an IOException when the file ends early.
    /// </summary>
    public static async Task SendAsync(SafeFileHandle direct, long offset, long length, PipeWriter writer, CancellationToken cancellationToken)
    {
        await using var reader = new DirectReadAhead(direct, offset, length);
        while (await reader.NextAsync() is { } chunk)
        {
            writer.Write(chunk.Span);
            var flush = await writer.FlushAsync(cancellationToken);
            if (flush.IsCanceled || flush.IsCompleted) throw new OperationCanceledException("the client went away");
        }
    }
}
