using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Output;
using ZcProxy.Native;

namespace ZcProxy.Core.Caching;

/// <summary>
/// One entry being written while the client receives the same bytes: a temp file in the entry's own
/// directory, renamed into place (no fsync: a crash leaves a temp file the loader deletes) only when the body
/// is complete and its length verified. Any write error abandons the entry, never the client's response.
/// The body arrives copied (<see cref="Write"/>) or, when the response is spliced, written by the kernel from a tee of
/// the splice pipe (<see cref="IBodyFileSink"/>), or, for a large spliced fill kept out of the page cache
/// (<see cref="FillAdmission"/>), read out of the tee's pipe into aligned buffers and written with O_DIRECT (<see cref="DirectFillWriter"/>);
/// zcproxy_cache_fill_bytes_total counts which (copy, splice, directio).
/// </summary>
internal sealed partial class CacheFill : IDisposable, IBodyFileSink, IDirectFileSink
{
    private const long AdviseEvery = 8L << 20;

    private readonly DiskCache _cache;
    private readonly string _hash;
    private readonly string _tempPath;
    private readonly long? _declaredLength;
    private readonly long _maxEntrySize;
    private bool _keepOutOfPageCache;
    private long _reservedRoom;
    private StoredResponse _head;
    private SafeFileHandle? _file;
    private long _bodyOffset;
    private long _written;
    private long _advised;
    private bool _done;
    private readonly bool _mayWriteDirect;
    private DirectFillWriter? _direct;
    private bool _directFlushed;

    private CacheFill(DiskCache cache, StoredResponse head, string hash, long? declaredLength)
    {
        _cache = cache;
        _head = head;
        _hash = hash;
        _declaredLength = declaredLength;
        _maxEntrySize = cache.Options.MaxEntrySize;
        // Whether the new entry's pages stay in the page cache: FillAdmission decides (by DirectIo, the length and, under
        // "residency", the memory's free room). Those that do not are kept out: when spliced, written with O_DIRECT
        // (bench/fill-cost: 0.36–0.39 CPU-s/GB against 0.5–1.5 through the page cache, docs/direct-io.md); when copied,
        // dropped behind the writes with DONTNEED.
        var options = cache.Options;
        _keepOutOfPageCache = !FillAdmission.KeepsInPageCache(new DirectIoPolicy(options.DirectIo, options.DirectIoThreshold), declaredLength,
            cache.Room, out _reservedRoom);
        _mayWriteDirect = _keepOutOfPageCache && declaredLength >= options.DirectIoThreshold;
        _tempPath = $"{cache.PathFor(hash)}.{cache.TempTag}-{Guid.NewGuid():N}.tmp";
    }

    public bool Failed => _done && _file is null && !Committed;
    public bool Committed { get; private set; }
    public long Written => _written;
    /// <summary>The response declared its length (Content-Length): <see cref="Commit"/> then proves the body whole.</summary>
    public bool HasDeclaredLength => _declaredLength is not null;

    /// <summary>Creates the temp file and writes the head; null (logged, counted) when the cache cannot take it.</summary>
    public static CacheFill? Start(DiskCache cache, StoredResponse head, long? declaredLength)
    {
        var hash = DiskCache.VariantHash(head.Key, head.Vary);
        var fill = new CacheFill(cache, head, hash, declaredLength);
        try
        {
            var block = EntryFile.Serialize(head, out fill._bodyOffset);
            if (block.Length == 0 || block.Length > EntryFile.MaxHeaderBlock)
            {
                fill.Abort("the head does not fit an entry", null, counted: false);
                return null;
            }
            Directory.CreateDirectory(Path.GetDirectoryName(fill._tempPath)!);
            fill._file = File.OpenHandle(fill._tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.Read | FileShare.Delete);
            RandomAccess.Write(fill._file, block, 0);
            return fill;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            fill.Abort("cannot create the entry", e);
            return null;
        }
    }

    /// <summary>Appends body bytes (already sent to the client).</summary>
    public void Write(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty || !Fits(data.Length)) return;
        if (_direct is not null)
        {
            Abort("a copied write after O_DIRECT writes began", null); // cannot happen: a direct fill takes every byte through IDirectFileSink
            return;
        }
        try
        {
            RandomAccess.Write(_file!, data, _bodyOffset + _written);
            Wrote(data.Length);
            _cache.Metrics.FillBytesCopied.Add(data.Length);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Abort("write failed", e);
        }
    }

    bool IBodyFileSink.TryTake(long count, [NotNullWhen(true)] out SafeFileHandle? file, out long offset)
    {
        file = Fits(count) ? _file : null;
        offset = _bodyOffset + _written;
        return file is not null;
    }

    void IBodyFileSink.Spliced(long bytes)
    {
        try { Wrote(bytes); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Abort("write failed", e); }
        _cache.Metrics.FillBytesSpliced.Add(bytes);
    }

    void IBodyFileSink.SpliceFailed(int errno) => Abort("write failed", new ErrnoException("splice", errno));

    IDirectFileSink? IBodyFileSink.Direct
    {
        get
        {
            if (_direct is null && _mayWriteDirect && _written == 0 && _file is not null)
                _direct = DirectFillWriter.TryOpen(_tempPath, _file, _bodyOffset); // null on a file system without O_DIRECT: spliced as before
            return _direct is null ? null : this;
        }
    }

    async ValueTask<Memory<byte>> IDirectFileSink.SpaceAsync(long count)
    {
        if (_direct is not { } direct || !Fits(count)) return default;
        var (space, errno) = await direct.SpaceAsync();
        if (errno != 0) Abort("write failed", new ErrnoException("pwrite(O_DIRECT)", errno));
        return _file is null ? default : space;
    }

    void IDirectFileSink.Filled(int bytes)
    {
        _direct!.Filled(bytes);
        _written += bytes;
        _cache.Metrics.FillBytesDirect.Add(bytes);
    }

    async ValueTask<bool> IDirectFileSink.FlushAsync()
    {
        if (_direct is not { } direct || _file is null) return false;
        int errno = await direct.FlushAsync();
        if (errno != 0)
        {
            Abort("write failed", new ErrnoException("pwrite(O_DIRECT)", errno));
            return false;
        }
        _directFlushed = true;
        return true;
    }

    /// <summary>False (the fill given up) when there is no file any more or <paramref name="count"/> more bytes would pass MaxEntrySize.</summary>
    private bool Fits(long count)
    {
        if (_file is null) return false;
        if (_written + count <= _maxEntrySize) return true;
        Abort($"body exceeds MaxEntrySize ({_maxEntrySize} bytes)", null, counted: false);
        return false;
    }

    private void Wrote(long bytes)
    {
        _written += bytes;
        if (!_keepOutOfPageCache && _written > _reservedRoom && _reservedRoom > 0)
            _keepOutOfPageCache = !FillAdmission.KeepsGrowing(_written, ref _reservedRoom, _cache.Room); // a body of unknown length outgrew its room
        // Big bodies are written so they do not push hot entries out of the page cache: DONTNEED starts
        // write-back of what was written and drops what is already clean (nginx does the same with directio).
        if (_keepOutOfPageCache && _written - _advised >= AdviseEvery)
        {
            Syscalls.Fadvise(_file!, 0, _bodyOffset + _written, LinuxConstants.POSIX_FADV_DONTNEED);
            _advised = _written;
        }
    }

    /// <summary>Verifies the length, finalizes the head and renames the entry into place. False when it was abandoned.</summary>
    public bool Commit()
    {
        if (_file is null) return false;
        if (_declaredLength is { } declared && declared != _written)
        {
            Abort($"body ended after {_written} of {declared} bytes", null, counted: false);
            return false;
        }
        if (_direct is not null && !_directFlushed)
        {
            Abort("the O_DIRECT writes were not all done", null);
            return false;
        }
        try
        {
            _head = _head with { BodyLength = _written };
            var block = EntryFile.Serialize(_head, out _, _bodyOffset);
            RandomAccess.Write(_file, block, 0);
            if (_keepOutOfPageCache) Syscalls.Fadvise(_file, 0, 0, LinuxConstants.POSIX_FADV_DONTNEED);
            _direct?.Dispose();
            _direct = null;
            _file.Dispose();
            _file = null;
            var finalPath = _cache.PathFor(_hash);
            File.Move(_tempPath, finalPath, overwrite: true);
            Committed = true;
            _done = true;
            ReleaseRoom();
            _cache.Committed(new IndexEntry
            {
                Hash = _hash, Key = _head.Key, Vary = _head.Vary, Size = _bodyOffset + _written, ResponseTime = _head.ResponseTime,
            });
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Abort("commit failed", e);
            return false;
        }
    }

    /// <summary>Abandons the entry: the partial file is removed and, for real errors, logged and counted.</summary>
    public void Abort(string reason, Exception? error = null, bool counted = true)
    {
        if (_done) return;
        _done = true;
        ReleaseRoom();
        _direct?.Dispose();
        _direct = null;
        _file?.Dispose();
        _file = null;
        DiskCache.TryDeleteFile(_tempPath);
        if (counted)
        {
            _cache.Metrics.FillErrors.Increment();
            LogFillFailed(_cache.Log, _head.Key, reason, error?.Message ?? "");
        }
    }

    /// <summary>The room this fill took is either in the page cache now or not coming.</summary>
    private void ReleaseRoom()
    {
        if (_reservedRoom > 0) _cache.Room.Release(_reservedRoom);
    }

    public void Dispose()
    {
        if (!_done) Abort("response did not complete", null, counted: false);
    }

    [LoggerMessage(EventId = 4003, Level = LogLevel.Error, Message = "cache fill of {Key} abandoned: {Reason} {Error}; the client still gets the full response")]
    private static partial void LogFillFailed(ILogger logger, string key, string reason, string error);
}
