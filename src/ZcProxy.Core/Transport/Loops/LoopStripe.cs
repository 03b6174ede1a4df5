using System.Runtime.InteropServices;

namespace ZcProxy.Core.Transport.Loops;

/// <summary>
/// Which stripe of a per-loop counter the current thread writes: each event loop thread its own, every other thread
/// (the thread pool, tests) stripe 0. Counters that are only summed when read (metrics, in-flight counts) keep one
/// stripe per loop so that the loops, which serve every proxied request, never write a cache line the other loop
/// writes too: on a 2-core VM each such write was a cross-core transfer of the line, several per request.
/// </summary>
internal static class LoopStripe
{
    /// <summary>Stripes of a striped counter: one per possible loop (one per core, as <see cref="EventLoops"/> makes them) and stripe 0.</summary>
    public static readonly int Count = Math.Min(Environment.ProcessorCount, 64) + 1;

    /// <summary>
    /// Length of a striped array: the stripes and one spare element at the end, so that no object allocated after the
    /// array shares the last stripe's cache line. 128 bytes per stripe: ~400 B per counter on 2 cores, ~8 KB on 64.
    /// </summary>
    public static readonly int ArrayLength = Count + 1;

    /// <summary>The current thread's stripe; a loop beyond <see cref="Count"/> shares stripe 0 (writers use interlocked operations anyway).</summary>
    public static int Current => EventLoop.Current is { } loop && loop.Index + 1 < Count ? loop.Index + 1 : 0;
}

/// <summary>A long alone on its cache lines (128 bytes: the adjacent-line prefetcher moves lines in pairs).</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedLong
{
    [FieldOffset(64)] public long Value;
}
