using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Native;

namespace ZcProxy.Core.Caching;

/// <summary>
/// Sends a big stored body read with O_DIRECT, so it does not evict hot small entries from the page cache
/// (nginx's directio + aio). Aligned buffers in a ring: several preads are in flight on the thread pool while the
/// bytes of the oldest completed one are copied into the response writer (double-buffered: while the client
/// connection drains one chunk, the next two reads are already running).
/// </summary>
public static class DirectIoSender
{
    public const int ChunkSize = 1024 * 1024;
    public const int ReadsInFlight = 2;

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

    /// <summary>Sends file bytes [offset, offset+length) to the response. Throws when the file ends early.</summary>
    public static async Task SendAsync(SafeFileHandle direct, long offset, long length, PipeWriter writer, CancellationToken cancellationToken)
    {
        long end = offset + length;
        long nextRead = offset & ~(long)(AlignedBuffer.Alignment - 1);
        var buffers = new AlignedBuffer[ReadsInFlight];
        var inFlight = new Queue<(Task<SysResult> Read, AlignedBuffer Buffer, long At)>();
        try
        {
            for (int i = 0; i < buffers.Length && nextRead < end; i++, nextRead += ChunkSize)
            {
                buffers[i] = new AlignedBuffer(ChunkSize);
                inFlight.Enqueue((StartRead(direct, buffers[i], nextRead), buffers[i], nextRead));
            }
            while (inFlight.Count > 0)
            {
                var (read, buffer, at) = inFlight.Dequeue();
                var result = await read;
                if (!result.Ok) throw result.ToException("pread(O_DIRECT)");
                long from = Math.Max(at, offset), to = Math.Min(at + ChunkSize, end);
                if (at + result.Bytes < to) throw new IOException($"cache file ended at {at + result.Bytes}, expected {end}");
                Copy(buffer, (int)(from - at), (int)(to - from), writer);
                if (nextRead < end)
                {
                    inFlight.Enqueue((StartRead(direct, buffer, nextRead), buffer, nextRead));
                    nextRead += ChunkSize;
                }
                var flush = await writer.FlushAsync(cancellationToken);
                if (flush.IsCanceled || flush.IsCompleted) throw new OperationCanceledException("the client went away");
            }
        }
        finally
        {
            // Reads still in flight own their buffers until they return.
            foreach (var (read, _, _) in inFlight) { try { await read; } catch (Exception) { } }
            foreach (var b in buffers) b?.Dispose();
        }
    }

    private static Task<SysResult> StartRead(SafeFileHandle file, AlignedBuffer buffer, long at)
        => Task.Run(() => buffer.ReadAt(file, at));

    private static void Copy(AlignedBuffer buffer, int start, int count, PipeWriter writer) => writer.Write(buffer.Span.Slice(start, count));
}
