using ZcProxy.Native;

namespace ZcProxy.Core.Output;

/// <summary>
/// The 1 MiB aligned buffers of O_DIRECT reads (hits) and writes (fills), kept between responses: fresh allocations
/// cost page faults and zeroing (and O_DIRECT pins the pages, faulting them in first), which showed up as ~10% of a
/// directio hit's CPU. Bounded: at most <see cref="Limit"/> idle buffers stay allocated.
/// </summary>
internal static class AlignedBufferPool
{
    public const int BufferSize = 1024 * 1024;
    private const int Limit = 16;
    private static readonly System.Collections.Concurrent.ConcurrentQueue<AlignedBuffer> Pool = new();
    private static int _pooled;

    public static AlignedBuffer Rent()
    {
        if (Pool.TryDequeue(out var buffer))
        {
            Interlocked.Decrement(ref _pooled);
            return buffer;
        }
        return new AlignedBuffer(BufferSize);
    }

    /// <summary>Only buffers no read or write uses any more come back.</summary>
    public static void Return(AlignedBuffer buffer)
    {
        if (Interlocked.Increment(ref _pooled) <= Limit) Pool.Enqueue(buffer);
        else
        {
            Interlocked.Decrement(ref _pooled);
            buffer.Dispose();
        }
    }
}
