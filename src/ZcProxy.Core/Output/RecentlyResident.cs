using System.Runtime.CompilerServices;

namespace ZcProxy.Core.Output;

/// <summary>
/// The file ranges that a cachestat(2) found wholly in the page cache in the last <see cref="TrustForMs"/>, so the next
/// hits of the same open file and range trust that look-up instead of walking every page again. A cachestat walks the
/// page cache's entries of each page of the range: ~80 µs per 16 MiB hit, 2.3 % of the proxy's CPU on resident 16 MiB
/// hits (perf, docs/direct-io.md), once per hit although four connections asked for the same entry every few
/// milliseconds. Keyed by the handle object (a cache entry's kept file; a replaced entry has a new one) and the range;
/// <see cref="Slots"/> ranges at most, one per slot by the handle's hash, a newer one replacing an older one. Only a
/// wholly resident answer is kept: a range found partly or not in memory is asked again at its next hit.
/// </summary>
internal sealed class RecentlyResident
{
    /// <summary>
    /// How long a "wholly resident" answer is trusted for the next hits: short, because a page evicted meanwhile is read
    /// by sendfile (re-admitted) rather than with O_DIRECT, and a trusted range's first sendfiles run on the loop without a
    /// look-up of their own (<see cref="FileRangeSource.SeenResidentForMs"/>, counted from this look-up). 16 MiB hits on
    /// 4 connections at 2 GB/s come every 8 ms, 256 MiB hits on 2 connections every ~100 ms.
    /// </summary>
    internal const long TrustForMs = 100;

    internal const int Slots = 16;

    private sealed record Seen(object File, long Offset, long Length, long AtMs);

    private readonly Seen?[] _slots = new Seen?[Slots];

    /// <summary>When bytes [offset, +length) of <paramref name="file"/> were last found wholly resident, within <see cref="TrustForMs"/> of <paramref name="nowMs"/>; null otherwise.</summary>
    public long? Since(object file, long offset, long length, long nowMs)
    {
        var seen = Volatile.Read(ref _slots[SlotOf(file)]);
        return seen is not null && ReferenceEquals(seen.File, file) && seen.Offset == offset && seen.Length == length
            && nowMs - seen.AtMs <= TrustForMs && nowMs >= seen.AtMs
            ? seen.AtMs
            : null;
    }

    /// <summary>A cachestat at <paramref name="nowMs"/> found every page of the range in the page cache.</summary>
    public void Note(object file, long offset, long length, long nowMs) =>
        Volatile.Write(ref _slots[SlotOf(file)], new Seen(file, offset, length, nowMs));

    private static int SlotOf(object file) => (RuntimeHelpers.GetHashCode(file) & int.MaxValue) % Slots;
}
