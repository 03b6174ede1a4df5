using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Output;
using ZcProxy.Native;

namespace ZcProxy.Core.Caching;

/// <summary>
/// The cache directory: entry files named by SHA-256 (never by URL text, so no key can name a path outside
/// <see cref="Root"/>), two levels of sub-directories, the in-memory index, the fill lock, eviction.
/// </summary>
internal sealed partial class DiskCache
{
    private readonly RuntimeOptions _runtime;
    private readonly CacheOptions _initial;
    private readonly ILogger _log;

    public DiskCache(CacheOptions options, RuntimeOptions runtime, CacheMetrics metrics, CacheIndex index, CacheLock cacheLock, PageCacheRoom room,
        TimeProvider time, ILogger<DiskCache> log)
    {
        _initial = options;
        _runtime = runtime;
        _log = log;
        Metrics = metrics;
        Index = index;
        Lock = cacheLock;
        Room = room;
        Time = time;
        Root = Path.GetFullPath(options.Path);
        try { Directory.CreateDirectory(Root); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The proxy still serves: every fill fails (logged and counted) until the directory is usable.
            LogRootUnusable(Root, e.Message);
        }
    }

    public string Root { get; }
    public CacheIndex Index { get; }
    public CacheLock Lock { get; }
    /// <summary>The memory's free room, which a large fill must find to stay in the page cache (<see cref="FillAdmission"/>).</summary>
    public PageCacheRoom Room { get; }
    public CacheMinUses MinUses { get; } = new();
    public CacheMetrics Metrics { get; }
    public TimeProvider Time { get; }
    public ILogger Log => _log;

    /// <summary>Tags temp files of this process, so the start-up loader deletes only leftovers of earlier runs.</summary>
    public string TempTag { get; } = $"{Environment.ProcessId}-{Guid.NewGuid():N}"[..24];

    /// <summary>Settings in force (reloads may change everything but Path).</summary>
    public CacheOptions Options
    {
        get
        {
            if (_runtime.Current.Cache is not { } current) return _initial;
            // Read per request: one copy per configuration, not one per call.
            var effective = Volatile.Read(ref _effective);
            if (effective is null || !ReferenceEquals(effective.Source, current))
                Volatile.Write(ref _effective, effective = new EffectiveOptions(current, current with { Path = _initial.Path }));
            return effective.Options;
        }
    }

    /// <summary>The running configuration's cache options with the path the cache was started with (a restart-only setting).</summary>
    private sealed record EffectiveOptions(CacheOptions Source, CacheOptions Options);
    private EffectiveOptions? _effective;

    /// <summary>True once the start-up scan has indexed the directory.</summary>
    public bool Loaded { get; internal set; }

    public static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>
    /// Names the meaning of keys in entry file names. Entries of earlier versions keyed the decoded path
    /// (<c>/k%3Fx=1</c> and <c>/k?x=1</c> alike); under another scheme their names no longer match and the start-up
    /// scan removes them, so none is served under today's keys. Change it whenever <see cref="CacheKey"/> changes meaning.
    /// </summary>
    private const string KeyScheme = "key-v2:request-target\n";

    /// <summary>The file name of one variant: key plus the Vary-selected request header values.</summary>
    public static string VariantHash(string key, IReadOnlyList<(string Name, string Value)> vary) => Hash(KeyScheme + VariantText(key, vary));

    /// <summary>The file name entries had before keys named their scheme (ZcProxy up to 0.1.0).</summary>
    private static string LegacyVariantHash(string key, IReadOnlyList<(string Name, string Value)> vary) => Hash(VariantText(key, vary));

    private static string VariantText(string key, IReadOnlyList<(string Name, string Value)> vary)
    {
        var sb = new StringBuilder(key);
        foreach (var (n, v) in vary) sb.Append('\n').Append(n).Append(':').Append(v);
        return sb.ToString();
    }

    public string PathFor(string hash) => Path.Combine(Root, hash[..2], hash[2..4], hash);

    /// <summary>
    /// An indexed entry ready to serve. A hit on an entry whose file the index keeps open costs no system call here: the
    /// head verified when the file was opened is served with it. Otherwise the file is opened and verified (a garbled or
    /// truncated file is deleted and reads as a miss), then kept open for the next hits (up to Cache.OpenFiles files). The
    /// head is read on the thread pool when its page left the page cache and the caller is an event loop
    /// (<see cref="Output.LoopFileIo"/>).
    /// </summary>
    public async ValueTask<OpenEntry?> OpenAsync(IndexEntry entry)
    {
        if (Index.TryHoldOpen(entry, Time.GetUtcNow().UtcTicks) is { } kept) return new OpenEntry(entry, kept, kept.Response);
        var path = PathFor(entry.Hash);
        var (errno, opened) = await Output.LoopFileIo.OpenReadAsync(path);
        if (opened is not { } file)
        {
            // Deleted behind our back (or by a purge racing this lookup); EMFILE, EACCES...: a miss now, the entry may well be readable later.
            if (errno is (int)Errno.ENOENT or (int)Errno.ENOTDIR) Index.Remove(entry);
            return null;
        }
        var parsed = Output.LoopFileIo.MustLeaveLoop(file, 0, EntryFile.Alignment)
            ? await Output.LoopFileIo.OnPoolAsync(() => EntryFile.Read(file))
            : EntryFile.Read(file);
        if (parsed is null || parsed.Value.Response.Key != entry.Key)
        {
            file.Dispose();
            Metrics.CorruptEntries.Increment();
            LogCorrupt(entry.Hash);
            Delete(entry);
            return null;
        }
        Index.Touch(entry, Time.GetUtcNow().UtcTicks);
        var handle = new EntryFileHandle(file, path, parsed.Value.Response, parsed.Value.BodyOffset);
        Index.KeepOpen(entry, handle, Options.OpenFiles);
        return new OpenEntry(entry, handle, handle.Response);
    }

    public void Delete(IndexEntry entry)
    {
        if (Index.Remove(entry)) TryDeleteFile(PathFor(entry.Hash));
    }

    /// <summary>Removes every variant of a key (invalidation, purge); returns how many files went.</summary>
    public int Invalidate(string key)
    {
        var victims = Index.RemoveKey(key);
        foreach (var v in victims) TryDeleteFile(PathFor(v.Hash));
        return victims.Count;
    }

    public int PurgePrefix(string prefix)
    {
        var victims = Index.RemoveWhere(e => e.Key.StartsWith(prefix, StringComparison.Ordinal));
        foreach (var v in victims) TryDeleteFile(PathFor(v.Hash));
        return victims.Count;
    }

    /// <summary>Puts a completed fill's entry into the index, then evicts down to MaxSize.</summary>
    internal void Committed(IndexEntry entry)
    {
        Index.Add(entry, Time.GetUtcNow().UtcTicks);
        Evict();
    }

    /// <summary>Evicts least-recently-used entries above MaxSize and entries unused for Inactive.</summary>
    public int Evict()
    {
        var options = Options;
        var now = Time.GetUtcNow().UtcTicks;
        var victims = Index.TakeEvictions(options.MaxSize, now - options.Inactive.Ticks);
        foreach (var v in victims) TryDeleteFile(PathFor(v.Hash));
        return victims.Count;
    }

    /// <summary>False when the file system holding the cache has less than MinFreeDisk available.</summary>
    public bool HasFreeSpace(long needed)
    {
        try { return new DriveInfo(Root).AvailableFreeSpace - needed >= Options.MinFreeDisk; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { return true; }
    }

    /// <summary>Start-up scan: temp files of earlier runs and unparsable entries are deleted, the rest indexed.</summary>
    public void LoadFromDisk(CancellationToken cancellationToken)
    {
        int loaded = 0, removed = 0;
        foreach (var path in Directory.EnumerateFiles(Root, "*", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 2, IgnoreInaccessible = true }))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var name = Path.GetFileName(path);
            if (name.EndsWith(".tmp", StringComparison.Ordinal))
            {
                if (!name.Contains(TempTag, StringComparison.Ordinal)) { TryDeleteFile(path); removed++; }
                continue;
            }
            if (name.Length != 64 || path != PathFor(name)) continue; // not ours: leave it alone
            (StoredResponse Response, long BodyOffset)? parsed;
            try
            {
                using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                parsed = EntryFile.Read(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            if (parsed is { } old && LegacyVariantHash(old.Response.Key, old.Response.Vary) == name)
            {
                TryDeleteFile(path); // intact, but keyed the way earlier versions did: not corrupt, just unusable
                removed++;
                continue;
            }
            if (parsed is null || VariantHash(parsed.Value.Response.Key, parsed.Value.Response.Vary) != name)
            {
                TryDeleteFile(path);
                Metrics.CorruptEntries.Increment();
                removed++;
                continue;
            }
            var r = parsed.Value.Response;
            Index.Add(new IndexEntry { Hash = name, Key = r.Key, Vary = r.Vary, Size = parsed.Value.BodyOffset + r.BodyLength, ResponseTime = r.ResponseTime },
                Time.GetUtcNow().UtcTicks, onlyIfAbsent: true);
            loaded++;
        }
        Loaded = true;
        LogLoaded(loaded, removed, Root);
        Evict();
    }

    internal static void TryDeleteFile(string path)
    {
        try { File.Delete(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "cache entry {Hash} is corrupt or truncated: removed")]
    private partial void LogCorrupt(string hash);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Error, Message = "cache directory {Root} cannot be created: {Error}; responses are served but not stored")]
    private partial void LogRootUnusable(string root, string error);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Information, Message = "cache loaded: {Loaded} entries, {Removed} leftover, corrupt or outdated files removed ({Root})")]
    private partial void LogLoaded(int loaded, int removed, string root);
}

/// <summary>
/// An entry opened for serving: the head to answer with and the body's place in the file. It holds the file until disposed
/// (<see cref="EntryFileHandle"/>); a view made by <see cref="With"/> shares its holder's and is not disposed.
/// </summary>
internal sealed class OpenEntry(IndexEntry entry, EntryFileHandle handle, StoredResponse response, bool holds = true) : IDisposable
{
    private EntryFileHandle? _held = holds ? handle : null;

    public IndexEntry Entry { get; } = entry;
    public SafeFileHandle File => handle.File;
    public StoredResponse Response { get; } = response;
    public long BodyOffset => handle.BodyOffset;
    public string Path => handle.Path;

    /// <summary>RFC 9111 §4.2's view of <see cref="Response"/> under a route's settings (computed once per kept-open file).</summary>
    public StoredFreshness Freshness(IgnoredHeaders ignored, TimeSpan? routeDefault) => handle.FreshnessOf(Response, ignored, routeDefault);

    /// <summary>The same file answered with <paramref name="updated"/> (a head a 304 refreshed), held by this one.</summary>
    public OpenEntry With(StoredResponse updated) => new(Entry, handle, updated, holds: false);

    public void Dispose() => Interlocked.Exchange(ref _held, null)?.Release();
}
