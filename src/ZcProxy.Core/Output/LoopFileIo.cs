using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;

namespace ZcProxy.Core.Output;

/// <summary>
/// The rule for file reads of a response (a cache entry's head, a sendfile, a pread): one that would wait for the disk
/// never runs on an event-loop thread, because every other connection of that loop would wait with it (a cold 64 KiB
/// hit held a loop for up to 16 ms, issue 14). So, on a loop thread, the bytes about to be read are first looked up in
/// the page cache with cachestat(2) (~0.2–1 µs, docs/direct-io.md): all there, the call runs inline (it only copies
/// or references memory); any page missing, the caller runs that one call on the thread pool, as nginx's
/// <c>aio threads</c> runs its reads and sendfile, and then goes on on its loop (<see cref="OnPoolAsync"/>). Off the loops (Kestrel's pool threads, YARP) nothing changes.
/// Opening waits for the disk too when the path's directory blocks or inode left memory: on a loop the open is tried
/// with openat2(RESOLVE_CACHED), which refuses (EAGAIN) instead of reading, and then runs on the pool.
/// When the kernel cannot tell (no cachestat before Linux 6.5, EPERM on files the proxy could not write; no
/// RESOLVE_CACHED before 5.12) the call stays inline, as before: probing by reading would itself wait, or pull the
/// pages in (docs/direct-io.md).
/// The rule is the same for a bulk body (at least DirectIoThreshold, sent from the page cache because it is resident):
/// its resident sendfiles run on the loop, as nginx's do. Sending them on the pool cost a hop per wait for the client
/// and woke the idle loop on every write edge: 256 MiB hits 0.19 against 0.12 CPU-s/GB, 4,300 against 900 context
/// switches per GB (docs/direct-io.md). What a loop spends on one connection's turn is bounded by
/// <see cref="Transport.Loops.LoopTurn"/> (2 MiB), or less when the socket fills first.
/// </summary>
internal static class LoopFileIo
{
    private static volatile bool s_noCachedOpen;

    /// <summary>open(2) of <paramref name="path"/> read-only, by the rule of <see cref="OpenAsync"/>.</summary>
    public static ValueTask<(int Errno, SafeFileHandle? File)> OpenReadAsync(string path) => OpenAsync(path, LinuxConstants.O_RDONLY);

    /// <summary>
    /// open(2) of <paramref name="path"/> with <paramref name="flags"/> (O_CLOEXEC is added): 0 and the handle, or the
    /// errno. On an event loop the open runs inline only when the path resolves from the kernel's caches, else on the
    /// thread pool.
    /// </summary>
    public static async ValueTask<(int Errno, SafeFileHandle? File)> OpenAsync(string path, int flags)
    {
        SafeFileHandle? file;
        if (EventLoop.OnAnyLoopThread && !s_noCachedOpen)
        {
            int errno = Syscalls.TryOpenCached(path, flags, out file);
            if (errno == (int)Errno.EAGAIN) return await OnPoolAsync(() => OpenOnPool(path, flags));
            if (errno is not ((int)Errno.ENOSYS or (int)Errno.EINVAL)) return (errno, file);
            s_noCachedOpen = true; // a kernel before 5.12: opens stay inline, as before
        }
        return (Syscalls.TryOpen(path, flags, out file), file);
    }

    /// <summary>
    /// Runs <paramref name="work"/>, a call that may wait for the disk, on the thread pool; a caller on an event loop then
    /// continues on its loop, where its connection's sockets and waits are. Without the way back, the rest of a cache hit
    /// (its head, its sendfiles) ran on the pool after one cold open: a thread hop per wait, and the loop's sendfile
    /// accounting missed it (CacheLoopIoTests failed so under load).
    /// </summary>
    public static async ValueTask<T> OnPoolAsync<T>(Func<T> work)
    {
        var loop = EventLoop.Current;
        try
        {
            return await Task.Run(work);
        }
        finally
        {
            if (loop is not null) await loop.SwitchTo();
        }
    }

    /// <summary>Tests see which opens left the loop (whether the await then completed inline is a race they cannot read).</summary>
    internal static Action<string>? OpenedOnPool;

    private static (int Errno, SafeFileHandle? File) OpenOnPool(string path, int flags)
    {
        OpenedOnPool?.Invoke(path);
        return (Syscalls.TryOpen(path, flags, out var opened), opened);
    }

    /// <summary>Tests see each page-cache look-up made for a read on a loop: the file, the offset and the length asked about.</summary>
    internal static Action<SafeFileHandle, long, long>? Asked;

    /// <summary>
    /// True when the caller is on an event-loop thread and the read of bytes [offset, offset+length) of
    /// <paramref name="file"/> must go to the thread pool: some page of those bytes is not in the page cache.
    /// </summary>
    public static bool MustLeaveLoop(SafeFileHandle file, long offset, long length)
    {
        if (!EventLoop.OnAnyLoopThread || length <= 0) return false;
        Asked?.Invoke(file, offset, length);
        var cached = Syscalls.CachedPages(file, offset, length);
        return cached.Ok && cached.Bytes < Syscalls.PagesSpanned(offset, length);
    }
}
