using System.Globalization;

namespace ZcProxy.Core.Output;

/// <summary>
/// How much the page cache may still grow without the kernel evicting anything to make room: the memory cgroup's free
/// room (v1 <c>memory.limit_in_bytes − memory.usage_in_bytes</c>, v2 <c>memory.max − memory.current</c>) and the
/// system's <c>MemFree</c> (not MemAvailable, which counts the page cache the kernel would have to evict), the smaller.
/// A large range the page cache lacks is re-admitted (a repeated cold hit sent by sendfile, <see cref="FileRangeSending"/>)
/// only when it <see cref="Fits"/>, and a large cache fill stays in the page cache only when it can <see cref="TryReserve"/>
/// its length (<c>Caching/FillAdmission</c>), so neither pushes other pages out (docs/direct-io.md). Read at most every
/// <see cref="RefreshEvery"/> (a few small procfs/cgroupfs files), on the injected clock.
/// </summary>
internal sealed class PageCacheRoom
{
    /// <summary>How stale the numbers may be: a burst of large fills or hits inside this time sees the same room.</summary>
    internal static readonly TimeSpan RefreshEvery = TimeSpan.FromMilliseconds(250);
    /// <summary>The least room left after the body; else an eighth of the memory the room is out of (the cgroup limit or MemTotal).</summary>
    internal const long MinMargin = 64L << 20;
    private const long NoLimit = 1L << 60; // cgroup v1 writes ~2^63 for "no limit"

    private readonly TimeProvider _time;
    private readonly string _meminfo;
    private readonly (string Limit, string Usage)? _cgroup;
    private readonly Lock _lock = new();
    private long _readAt;
    private bool _read;
    private Reading? _reading;
    private long _reserved;

    /// <summary>Free bytes and the total they are out of (for the margin).</summary>
    internal readonly record struct Room(long Free, long Total);

    /// <summary>The system's room and, when this process is in a memory cgroup with a limit, the cgroup's.</summary>
    internal readonly record struct Reading(Room System, Room? Cgroup)
    {
        public bool Fits(long bytes) => PageCacheRoom.Fits(System, bytes) && (Cgroup is not { } cgroup || PageCacheRoom.Fits(cgroup, bytes));
    }

    public PageCacheRoom(TimeProvider time) : this(time, "/proc", "/sys/fs/cgroup") { }

    /// <summary>Tests give a fake <paramref name="proc"/> and <paramref name="cgroupRoot"/>.</summary>
    internal PageCacheRoom(TimeProvider time, string proc, string cgroupRoot)
    {
        _time = time;
        _meminfo = Path.Combine(proc, "meminfo");
        _cgroup = CgroupFiles(Path.Combine(proc, "self", "cgroup"), cgroupRoot);
    }

    /// <summary>
    /// True when <paramref name="bytes"/> more in the page cache leave at least the margin free, in the cgroup and in the
    /// system; false when they do not, or the room cannot be read.
    /// </summary>
    public bool Fits(long bytes)
    {
        lock (_lock) return FitsLocked(bytes);
    }

    /// <summary>
    /// <see cref="Fits"/>, and if so the bytes are counted as taken until <see cref="Release"/>: fills still being written
    /// are not in the memory numbers yet (nor in a reading up to <see cref="RefreshEvery"/> old), and without this each of
    /// a burst of fills would see the same room.
    /// </summary>
    public bool TryReserve(long bytes)
    {
        lock (_lock)
        {
            if (!FitsLocked(bytes)) return false;
            _reserved += bytes;
            return true;
        }
    }

    /// <summary>
    /// Gives back what <see cref="TryReserve"/> took once the bytes are written (now in the memory numbers) or not coming;
    /// the next question reads the numbers again, since the cached reading has neither.
    /// </summary>
    public void Release(long bytes)
    {
        lock (_lock)
        {
            _reserved = Math.Max(0, _reserved - bytes);
            _read = false;
        }
    }

    /// <summary>The rule both questions ask, reservations counted as taken; under _lock.</summary>
    private bool FitsLocked(long bytes) => CurrentLocked() is { } reading && reading.Fits(bytes + _reserved);

    internal static bool Fits(Room room, long bytes) => room.Free - bytes >= Math.Max(MinMargin, room.Total / 8);

    /// <summary>The room now (null: unreadable), read again only when the last reading is older than <see cref="RefreshEvery"/>; under _lock.</summary>
    private Reading? CurrentLocked()
    {
        long now = _time.GetTimestamp();
        if (_read && _time.GetElapsedTime(_readAt, now) < RefreshEvery) return _reading;
        _reading = Read();
        _readAt = now;
        _read = true;
        return _reading;
    }

    private Reading? Read()
    {
        try
        {
            long? free = null, total = null;
            foreach (var line in File.ReadLines(_meminfo))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal)) total = Kilobytes(line);
                else if (line.StartsWith("MemFree:", StringComparison.Ordinal)) free = Kilobytes(line);
            }
            if (free is not { } systemFree || total is not { } systemTotal) return null;
            Room? cgroup = null;
            if (_cgroup is { } files && Number(File.ReadAllText(files.Limit)) is { } limit && limit < NoLimit
                && Number(File.ReadAllText(files.Usage)) is { } usage)
                cgroup = new Room(Math.Max(0, limit - usage), limit);
            return new Reading(new Room(systemFree, systemTotal), cgroup);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// This process's memory cgroup files, from /proc/self/cgroup: the v1 memory controller's line
    /// (<c>N:memory:/path</c>) if there is one, else the v2 line (<c>0::/path</c>) when that cgroup has memory.max.
    /// A parent's tighter limit is not seen.
    /// </summary>
    private static (string Limit, string Usage)? CgroupFiles(string selfCgroup, string root)
    {
        try
        {
            string? v2 = null;
            foreach (var line in File.ReadLines(selfCgroup))
            {
                var parts = line.Split(':', 3);
                if (parts.Length != 3) continue;
                var dir = parts[2].TrimStart('/');
                if (parts[1].Split(',').Contains("memory"))
                {
                    var v1 = Path.Combine(root, "memory", dir);
                    return (Path.Combine(v1, "memory.limit_in_bytes"), Path.Combine(v1, "memory.usage_in_bytes"));
                }
                if (parts[0] == "0" && parts[1].Length == 0) v2 = Path.Combine(root, dir);
            }
            if (v2 is not null && File.Exists(Path.Combine(v2, "memory.max")))
                return (Path.Combine(v2, "memory.max"), Path.Combine(v2, "memory.current"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return null;
    }

    private static long? Kilobytes(string line)
    {
        var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return fields.Length >= 2 && long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out long kb) ? kb * 1024 : null;
    }

    /// <summary>A cgroup file's number; "max" (v2: no limit) is <see cref="long.MaxValue"/>.</summary>
    private static long? Number(string text)
    {
        text = text.Trim();
        if (text == "max") return long.MaxValue;
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : null;
    }
}
