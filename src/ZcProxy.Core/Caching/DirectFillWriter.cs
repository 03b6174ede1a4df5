using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Output;
using ZcProxy.Native;

namespace ZcProxy.Core.Caching;

/// <summary>
/// A large fill's body written with O_DIRECT: bytes gather in an aligned 1 MiB buffer, and each full buffer is written
/// at its (aligned) offset on the thread pool while the next one fills, so the writes never hold an event loop
/// (Output/LoopFileIo) and two buffers per fill are enough. The body starts at a 4096-aligned offset
/// (<see cref="EntryFile"/>), so every O_DIRECT write is aligned in place, offset and length.
/// The tail (bytes past the last multiple of 4096) is written through the fill's ordinary handle with one buffered
/// pwrite at the end: the file then ends exactly at the body's end, so there is no padding to cut off (no ftruncate) and
/// no fcntl to clear O_DIRECT on a handle another write may still use. A failed write (ENOSPC, EIO) is kept and
/// reported by the next call; the fill then gives up.
/// </summary>
internal sealed class DirectFillWriter : IDisposable
{
    private const int BufferSize = AlignedBufferPool.BufferSize;
    private readonly SafeFileHandle _direct;
    private readonly SafeFileHandle _buffered;
    private AlignedBuffer _filling;
    private int _filled;
    private long _fileOffset; // where _filling's first byte goes
    private AlignedBuffer? _spare;
    private (Task<SysResult> Task, AlignedBuffer Buffer)? _writing;
    private int _failed; // the errno of a failed write: every later call reports it

    private DirectFillWriter(SafeFileHandle direct, SafeFileHandle buffered, long bodyOffset)
    {
        _direct = direct;
        _buffered = buffered;
        _fileOffset = bodyOffset;
        _filling = AlignedBufferPool.Rent();
    }

    /// <summary>A second handle on the fill's temp file, opened O_DIRECT; null when the file system refuses O_DIRECT.</summary>
    public static DirectFillWriter? TryOpen(string tempPath, SafeFileHandle buffered, long bodyOffset)
    {
        if (bodyOffset % AlignedBuffer.Alignment != 0) return null;
        int errno = Syscalls.TryOpen(tempPath, LinuxConstants.O_WRONLY | LinuxConstants.O_DIRECT, out var direct);
        return errno == 0 ? new DirectFillWriter(direct!, buffered, bodyOffset) : null;
    }

    /// <summary>Room in the buffer being filled, after waiting for the write before it when it is full; the errno of a failed write.</summary>
    public async ValueTask<(Memory<byte> Space, int Errno)> SpaceAsync()
    {
        if (_filled == BufferSize && _writing is { } writing)
        {
            await writing.Task;
            StartWriteIfFull();
        }
        return _failed != 0 ? (default, _failed) : (_filling.Memory[_filled..], 0);
    }

    /// <summary>A full buffer goes to a write at once (when the one before it is done), so the disk works while the next fills.</summary>
    public void Filled(int bytes)
    {
        _filled += bytes;
        StartWriteIfFull();
    }

    private void StartWriteIfFull()
    {
        if (_filled < BufferSize || _failed != 0) return;
        if (_writing is { } writing)
        {
            if (!writing.Task.IsCompleted) return;
            var r = writing.Task.GetAwaiter().GetResult();
            _writing = null;
            _spare = writing.Buffer;
            if (!r.Ok)
            {
                _failed = r.Errno;
                return;
            }
        }
        var full = _filling;
        long at = _fileOffset;
        var direct = _direct;
        _writing = (Task.Run(() => full.WriteAt(direct, BufferSize, at)), full);
        _fileOffset += BufferSize;
        _filling = _spare ?? AlignedBufferPool.Rent();
        _spare = null;
        _filled = 0;
    }

    /// <summary>Writes what is buffered (the aligned part with O_DIRECT, the tail buffered) and waits for every write: 0 or the errno.</summary>
    public async ValueTask<int> FlushAsync()
    {
        int errno = await WaitForWriteAsync();
        if (errno != 0 || _filled == 0) return errno;
        var buffer = _filling;
        int count = _filled;
        int aligned = count & ~(AlignedBuffer.Alignment - 1);
        long at = _fileOffset;
        var (direct, file) = (_direct, _buffered);
        var r = await Task.Run(() =>
        {
            var written = aligned > 0 ? buffer.WriteAt(direct, aligned, at) : default;
            return written.Ok && count > aligned ? Syscalls.PwriteAll(file, buffer.Span[aligned..count], at + aligned) : written;
        });
        _fileOffset += count;
        _filled = 0;
        if (!r.Ok) _failed = r.Errno;
        return _failed;
    }

    private async ValueTask<int> WaitForWriteAsync()
    {
        if (_writing is { } writing)
        {
            var r = await writing.Task;
            _writing = null;
            _spare = writing.Buffer;
            if (!r.Ok) _failed = r.Errno;
        }
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
        if (_spare is { } spare) AlignedBufferPool.Return(spare);
        if (_writing is { } writing)
        {
            if (writing.Task.IsCompleted) AlignedBufferPool.Return(writing.Buffer);
            else _ = writing.Task.ContinueWith(static (_, b) => ((AlignedBuffer)b!).Dispose(), writing.Buffer, TaskScheduler.Default);
        }
    }
}
