namespace ZcProxy.Core.Caching;

/// <summary>One entry file as the in-memory index knows it (enough to select a variant and to evict).</summary>
internal sealed class IndexEntry
{
    public required string Hash { get; init; }
    public required string Key { get; init; }
    public required IReadOnlyList<(string Name, string Value)> Vary { get; init; }
    public required long Size { get; init; }
    public required DateTimeOffset ResponseTime { get; init; }
    internal long LastAccessTicks;
    internal LinkedListNode<IndexEntry>? Node;
    /// <summary>The file kept open with its verified head while the entry is in the index (at most Cache.OpenFiles of them).</summary>
    internal EntryFileHandle? Open;
}

/// <summary>
/// The in-memory index: entries by file hash and by key (several Vary variants per key), an LRU list and the
/// total size. One lock; every operation is short and never touches the disk.
/// </summary>
internal sealed class CacheIndex
{
    private readonly object _lock = new();
    private readonly Dictionary<string, IndexEntry> _byHash = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<IndexEntry>> _byKey = new(StringComparer.Ordinal);
    private readonly LinkedList<IndexEntry> _lru = new(); // most recently used first
    private readonly LinkedList<IndexEntry> _openLru = new(); // entries with a kept-open file, most recently used first
    private long _size;

    public long Size => Interlocked.Read(ref _size);
    public int Count { get { lock (_lock) return _byHash.Count; } }
    /// <summary>Entry files kept open for hits.</summary>
    public int OpenFiles { get { lock (_lock) return _openLru.Count; } }

    /// <summary>Adds or replaces (same hash) an entry; returns the replaced one, whose file is already gone.</summary>
    public void Add(IndexEntry entry, long nowTicks, bool onlyIfAbsent = false)
    {
        lock (_lock)
        {
            if (_byHash.TryGetValue(entry.Hash, out var old))
            {
                if (onlyIfAbsent) return;
                RemoveLocked(old);
            }
            entry.LastAccessTicks = nowTicks;
            entry.Node = _lru.AddFirst(entry);
            _byHash[entry.Hash] = entry;
            if (!_byKey.TryGetValue(entry.Key, out var list)) _byKey[entry.Key] = list = [];
            list.Add(entry);
            _size += entry.Size;
        }
    }

    /// <summary>§4.1: the variants stored for a key that match the request (most recent first).</summary>
    /// <summary>The entries of <paramref name="key"/> whose Vary values <paramref name="matches"/> accepts, newest response first.</summary>
    public List<IndexEntry> Candidates<TState>(string key, Func<IReadOnlyList<(string Name, string Value)>, TState, bool> matches, TState state)
    {
        // A loop, not LINQ: this runs on every cache lookup (an iterator, a sort and a closure per hit before).
        var found = new List<IndexEntry>(1);
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var list)) return found;
            foreach (var entry in list)
            {
                if (!matches(entry.Vary, state)) continue;
                // Newest first, and stable (entries of the same instant keep their order), as OrderByDescending was.
                int at = found.Count;
                while (at > 0 && found[at - 1].ResponseTime < entry.ResponseTime) at--;
                found.Insert(at, entry);
            }
        }
        return found;
    }

    public void Touch(IndexEntry entry, long nowTicks)
    {
        lock (_lock) TouchLocked(entry, nowTicks);
    }

    /// <summary>
    /// A hit on an entry whose file is kept open: the file, held for the caller (who releases it), and the entry touched;
    /// null when the entry keeps no file open or has left the index.
    /// </summary>
    public EntryFileHandle? TryHoldOpen(IndexEntry entry, long nowTicks)
    {
        lock (_lock)
        {
            if (entry.Open is not { } open) return null;
            open.Hold();
            TouchLocked(entry, nowTicks);
            _openLru.Remove(open.Node!);
            _openLru.AddFirst(open.Node!);
            return open;
        }
    }

    /// <summary>
    /// Keeps <paramref name="file"/> (held by the caller) open for the next hits on <paramref name="entry"/>, when the entry is
    /// still in the index and keeps none yet; beyond <paramref name="maxOpen"/> kept files, the least recently used is let go.
    /// </summary>
    public bool KeepOpen(IndexEntry entry, EntryFileHandle file, int maxOpen)
    {
        lock (_lock)
        {
            if (maxOpen <= 0 || entry.Node?.List is null || entry.Open is not null) return false;
            file.Hold();
            entry.Open = file;
            file.Node = _openLru.AddFirst(entry);
            while (_openLru.Count > maxOpen) CloseLocked(_openLru.Last!.Value);
            return true;
        }
    }

    private void TouchLocked(IndexEntry entry, long nowTicks)
    {
        if (entry.Node?.List is null) return;
        entry.LastAccessTicks = nowTicks;
        _lru.Remove(entry.Node);
        _lru.AddFirst(entry.Node);
    }

    /// <summary>The index stops keeping the entry's file open (hits still sending from it keep it until they finish).</summary>
    private void CloseLocked(IndexEntry entry)
    {
        if (entry.Open is not { } open) return;
        entry.Open = null;
        _openLru.Remove(open.Node!);
        open.Node = null;
        open.Release();
    }

    /// <summary>True while <paramref name="entry"/> is the one stored under its hash: not replaced (refreshed) or removed since it was looked up.</summary>
    public bool IsCurrent(IndexEntry entry)
    {
        lock (_lock) return _byHash.TryGetValue(entry.Hash, out var current) && ReferenceEquals(current, entry);
    }

    public bool Remove(IndexEntry entry)
    {
        lock (_lock)
        {
            if (!_byHash.TryGetValue(entry.Hash, out var current) || !ReferenceEquals(current, entry)) return false;
            RemoveLocked(entry);
            return true;
        }
    }

    public List<IndexEntry> RemoveWhere(Func<IndexEntry, bool> predicate)
    {
        lock (_lock)
        {
            var victims = _byHash.Values.Where(predicate).ToList();
            foreach (var v in victims) RemoveLocked(v);
            return victims;
        }
    }

    public List<IndexEntry> RemoveKey(string key)
    {
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var list)) return [];
            var victims = list.ToList();
            foreach (var v in victims) RemoveLocked(v);
            return victims;
        }
    }

    /// <summary>Least recently used entries removed until the total is at most <paramref name="maxSize"/>, plus any unused since <paramref name="inactiveBeforeTicks"/>.</summary>
    public List<IndexEntry> TakeEvictions(long maxSize, long inactiveBeforeTicks)
    {
        var victims = new List<IndexEntry>();
        lock (_lock)
        {
            while (_lru.Last is { } last && (_size > maxSize || last.Value.LastAccessTicks < inactiveBeforeTicks))
            {
                victims.Add(last.Value);
                RemoveLocked(last.Value);
            }
        }
        return victims;
    }

    private void RemoveLocked(IndexEntry entry)
    {
        _byHash.Remove(entry.Hash);
        if (_byKey.TryGetValue(entry.Key, out var list))
        {
            list.Remove(entry);
            if (list.Count == 0) _byKey.Remove(entry.Key);
        }
        if (entry.Node?.List is not null) _lru.Remove(entry.Node);
        CloseLocked(entry);
        _size -= entry.Size;
    }
}
