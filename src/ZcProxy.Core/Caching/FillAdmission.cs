using ZcProxy.Core.Output;

namespace ZcProxy.Core.Caching;

/// <summary>
/// The one place that decides whether a cache fill's bytes stay in the page cache (nginx keeps every fill there;
/// its <c>directio</c> keeps none of the large ones). Under <see cref="DirectIoMode.Residency"/> a large fill (at least
/// DirectIoThreshold, or of unknown length) stays only when the memory has free room for it (<see cref="PageCacheRoom"/>,
/// the rule re-admission uses): a new entry is the likeliest to be asked for again, but filling a full page cache
/// evicts other entries, and in the pollution benchmark the fills of the cold set pushed the primed hot set out
/// (56–71 % resident when the load began, ~3 s of misses to recover; docs/direct-io.md). Without room a residency fill
/// goes as under <see cref="DirectIoMode.Threshold"/>: written with O_DIRECT when spliced, dropped behind the writes
/// with DONTNEED when copied. So on a full page cache residency treats large entries as the threshold rule does.
/// </summary>
internal static class FillAdmission
{
    /// <summary>
    /// True when the fill's pages may stay in the page cache. <paramref name="reserved"/>: the bytes taken from
    /// <paramref name="room"/> for it, which the fill gives back (<see cref="PageCacheRoom.Release"/>) when it ends.
    /// </summary>
    public static bool KeepsInPageCache(DirectIoPolicy policy, long? declaredLength, PageCacheRoom room, out long reserved)
    {
        reserved = 0;
        bool large = declaredLength is not { } length || length >= policy.Threshold;
        switch (policy.Mode)
        {
            case DirectIoMode.Off:
                return true;
            case DirectIoMode.Threshold:
                return !large;
            default:
                if (!large) return true;
                // A body of unknown length asks for the least a large one has, and for more as it grows (KeepsGrowing).
                long bytes = declaredLength ?? policy.Threshold;
                if (!room.TryReserve(bytes)) return false;
                reserved = bytes;
                return true;
        }
    }

    /// <summary>
    /// For a fill kept in the page cache with <paramref name="reserved"/> bytes of room (a body of unknown length):
    /// once it has <paramref name="written"/> more than that, it asks for as much again. True while it may stay;
    /// false when the room is refused, and the fill is dropped from the page cache from then on, what it wrote included.
    /// </summary>
    public static bool KeepsGrowing(long written, ref long reserved, PageCacheRoom room)
    {
        while (written > reserved)
        {
            if (!room.TryReserve(reserved)) return false;
            reserved *= 2;
        }
        return true;
    }
}
