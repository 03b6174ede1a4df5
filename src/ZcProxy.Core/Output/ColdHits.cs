namespace ZcProxy.Core.Output;

/// <summary>
/// How often each large file was hit while not in the page cache, lately: re-admission (<see cref="FileRangeSending"/>)
/// brings back only a file hit cold again within <see cref="Window"/>, not one asked for once. Keyed by path, bounded:
/// past <see cref="MaxFiles"/> files the counts start over (they only delay a re-admission by a hit).
/// </summary>
internal sealed class ColdHits(TimeProvider time)
{
    /// <summary>Cold hits further apart than this do not add up (DAMON pages out what stays idle for 60 s on these VMs).</summary>
    internal static readonly TimeSpan Window = TimeSpan.FromSeconds(60);
    internal const int MaxFiles = 4096;

    private readonly Dictionary<string, (int Count, long Last)> _files = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>Counts a cold hit of <paramref name="path"/>: the cold hits in a row, each within <see cref="Window"/> of the one before, this one included.</summary>
    public int Note(string path)
    {
        long now = time.GetTimestamp();
        lock (_lock)
        {
            int count = _files.TryGetValue(path, out var seen) && time.GetElapsedTime(seen.Last, now) <= Window ? seen.Count + 1 : 1;
            if (count == 1 && _files.Count >= MaxFiles) _files.Clear();
            _files[path] = (count, now);
            return count;
        }
    }

    /// <summary>The file was brought back into the page cache: its count starts over.</summary>
    public void Forget(string path)
    {
        lock (_lock) _files.Remove(path);
    }
}
