using Microsoft.Win32.SafeHandles;

namespace ZcProxy.Core.Caching;

/// <summary>
/// An entry file open for reading together with the head verified from it. The handle and the head come from the same
/// open, so they describe the same file whatever rename has replaced the path since. Shared by its holders: the opener,
/// the index while it keeps the file open for later hits (<see cref="CacheIndex.KeepOpen"/>, nginx's open_file_cache),
/// and each hit served from it; the file closes when the last one lets go, so a purge or a replacement never closes it
/// under a hit still sending from it.
/// </summary>
internal sealed class EntryFileHandle(SafeFileHandle file, string path, StoredResponse response, long bodyOffset)
{
    private int _holders = 1; // the opener

    public SafeFileHandle File { get; } = file;
    /// <summary>Where it was opened (an O_DIRECT read opens it anew there and checks the length).</summary>
    public string Path { get; } = path;
    public StoredResponse Response { get; } = response;
    public long BodyOffset { get; } = bodyOffset;

    private StoredFreshness? _freshness;

    /// <summary>The head's freshness under a route's settings, computed once per head and settings, not per hit.</summary>
    public StoredFreshness FreshnessOf(StoredResponse response, IgnoredHeaders ignored, TimeSpan? routeDefault)
    {
        var known = Volatile.Read(ref _freshness);
        var freshness = StoredFreshness.Of(response, ignored, routeDefault, known);
        if (!ReferenceEquals(freshness, known) && ReferenceEquals(response, Response)) Volatile.Write(ref _freshness, freshness);
        return freshness;
    }

    /// <summary>Its place in the index's least-recently-used list of kept-open files (under the index's lock).</summary>
    internal LinkedListNode<IndexEntry>? Node;

    /// <summary>One more holder; only by someone who holds it already (the index, under its lock, or the opener).</summary>
    internal void Hold() => Interlocked.Increment(ref _holders);

    /// <summary>A holder lets go; the last one closes the file.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _holders) == 0) File.Dispose();
    }
}
