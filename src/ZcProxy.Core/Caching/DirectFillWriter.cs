using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Output;
using ZcProxy.Native;

namespace ZcProxy.Core.Caching;

/// <summary>
/// A large fill's body written with O_DIRECT: bytes gather in an aligned 1 MiB buffer, and each full buffer is written
/// at its (aligned) offset on <see cref="DirectIoThreads"/> while the next ones fill: up to <see cref="WritesInFlight"/>
/// writes are in flight, so the disk has a queue and the writes never hold an event loop (Output/LoopFileIo) nor a
/// thread-pool worker. The body starts at a 4096-aligned offset (<see cref="EntryFile"/>), so every O_DIRECT write is
/// aligned in place, offset and length; writes may finish in any order (each has its own range of the file).
/// The tail (bytes past the last multiple of 4096) is written through the fill's ordinary handle with one buffered
/// pwrite at the end, after every O_DIRECT write: the file then ends exactly at the body's end, so there is no padding to
/// cut off (no ftruncate) and no fcntl to clear O_DIRECT on a handle another write may still use. A failed write
/// (ENOSPC, EIO) is kept and reported by the next call; the fill then gives up.
/// </summary>
internal sealed class DirectFillWriter : IDisposable
{
    /// <summary>
    /// Writes kept in flight per fill: with one (the value before), the disk sat idle while the next buffer filled;
    /// measured in docs/direct-io.md, "Fill writes".
    /// </summary>
    public const int WritesInFlight = 2;

    /// <summary>The most buffers one fill holds: the writes in flight and the one filling.</summary>
    public const int BuffersPerFill = WritesInFlight + 1;

    private const int BufferSize = AlignedBufferPool.BufferSize;
    private readonly SafeFileHandle _direct;
    private readonly SafeFileHandle _buffered;
    private readonly DirectIoThreads _io;
    private readonly Queue<(Task<SysResult> Write, AlignedBuffer Buffer)> _writing = new();
    private readonly Stack<AlignedBuffer> _spares = new();
    private AlignedBuffer _filling;
    private int _filled;
    private long _fileOffset; // where _filling's first byte goes
    private int _failed; // the errno of a failed write: every later call reports it

    private DirectFillWriter(SafeFileHandle direct, SafeFileHandle buffered, long bodyOffset, DirectIoThreads io)
    {
        _direct = direct;
        _buffered = buffered;
        _fileOffset = bodyOffset;
        _io = io;
        _filling = AlignedBufferPool.Rent();
    }

    /// <summary>A second handle on the fill's temp file, opened O_DIRECT; null when the file system refuses O_DIRECT.</summary>
    public static DirectFillWriter? TryOpen(string tempPath, SafeFileHandle buffered, long bodyOffset, DirectIoThreads? io = null)
    {
        if (bodyOffset % AlignedBuffer.Alignment != 0) return null;
        int errno = Syscalls.TryOpen(tempPath, LinuxConstants.O_WRONLY | LinuxConstants.O_DIRECT, out var direct);
        return errno == 0 ? new DirectFillWriter(direct!, buffered, bodyOffset, io ?? DirectIoThreads.Shared) : null;
    }

    /// <summary>
    /// Room in the buffer being filled; when it is full and <see cref="WritesInFlight"/> writes are out, after the oldest of
    /// them is done (the continuation then runs on the I/O thread: the caller hops back to its loop). The errno of a failed write.
    /// </summary>
    public async ValueTask<(Memory<byte> Space, int Errno)> SpaceAsync()
    {
        while (_filled == BufferSize && _failed == 0)
        {
            if (_writing.Count >= WritesInFlight) await ((Task)_writing.Peek().Write).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            StartWriteIfFull();
        }
        return _failed != 0 ? (default, _failed) : (_filling.Memory[_filled..], 0);
    }

    /// <summary>A full buffer goes to a write at once (unless <see cref="WritesInFlight"/> are out), so the disk works while the next fills.</summary>
    public void Filled(int bytes)
    {
        _filled += bytes;
        StartWriteIfFull();
    }

    private void StartWriteIfFull()
    {
        if (_filled < BufferSize) return;
        CollectFinishedWrites();
        if (_failed != 0 || _writing.Count >= WritesInFlight) return;
        _writing.Enqueue((_io.WriteAsync(_filling, 0, BufferSize, _direct, _fileOffset), _filling));
        _fileOffset += BufferSize;
        _filling = _spares.Count > 0 ? _spares.Pop() : AlignedBufferPool.Rent();
        _filled = 0;
    }

    /// <summary>The writes done, oldest first, give their buffers back for filling; the first failure is kept.</summary>
    private void CollectFinishedWrites()
    {
        while (_writing.TryPeek(out var writing) && writing.Write.IsCompleted)
        {
            _writing.Dequeue();
            _spares.Push(writing.Buffer);
            var r = writing.Write.IsCompletedSuccessfully ? writing.Write.Result : new SysResult(0, (int)Errno.EBADF); // the handle was closed under it
            if (!r.Ok && _failed == 0) _failed = r.Errno;
        }
    }

    /// <summary>Writes what is buffered (the aligned part with O_DIRECT, the tail buffered) and waits for every write: 0 or the errno.</summary>
    public async ValueTask<int> FlushAsync()
    {
        while (_writing.TryPeek(out var writing))
        {
            await ((Task)writing.Write).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing); // a failure is collected below
            CollectFinishedWrites();
        }
        if (_failed != 0 || _filled == 0) return _failed;
        int count = _filled;
        int aligned = count & ~(AlignedBuffer.Alignment - 1);
        long at = _fileOffset;
        var r = aligned > 0 ? await _io.WriteAsync(_filling, 0, aligned, _direct, at) : default;
        if (r.Ok && count > aligned) r = await _io.WriteAsync(_filling, aligned, count - aligned, _buffered, at + aligned);
        _fileOffset += count;
        _filled = 0;
        if (!r.Ok) _failed = r.Errno;
        return _failed;
    }

    /// <summary>
    /// Closes the O_DIRECT handle and gives the buffers back; a buffer a write still uses is left to that write (its
    /// memory and the handle stay valid until the write returns: both are SafeHandles it holds a reference on).
    /// </summary>
    public void Dispose()
    {
        _direct.Dispose();
        AlignedBufferPool.Return(_filling);
        while (_spares.TryPop(out var spare)) AlignedBufferPool.Return(spare);
        while (_writing.TryDequeue(out var writing))
        {
            if (writing.Write.IsCompleted) AlignedBufferPool.Return(writing.Buffer);
            else _ = writing.Write.ContinueWith(static (_, b) => ((AlignedBuffer)b!).Dispose(), writing.Buffer, TaskScheduler.Default);
        }
    }
}
