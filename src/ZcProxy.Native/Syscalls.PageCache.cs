using System.Runtime.InteropServices;
using Tmds.Linux;

namespace ZcProxy.Native;

/// <summary>Calls around the page cache: how much of a file range is cached (cachestat), and moving pipe bytes into files (tee, splice with an offset).</summary>
internal static unsafe partial class Syscalls
{
    public const int PageSize = 4096;

    /// <summary>
    /// cachestat(2): how many of the pages holding bytes [offset, offset+length) of <paramref name="file"/> are in the
    /// page cache (dirty and under-writeback pages included). Bytes = the page count; ENOSYS before Linux 6.5, EPERM
    /// where the kernel (6.15+) lets only callers that could write the file ask.
    /// </summary>
    public static SysResult CachedPages(SafeHandle file, long offset, long length)
    {
        using var lease = FdLease.Acquire(file);
        var range = new CacheStatRange { Offset = (ulong)offset, Length = (ulong)length };
        CacheStatCounts counts;
        long r = Libc.syscall_cachestat(Libc.CacheStatSyscall, lease.Fd, &range, &counts, 0);
        return r == 0 ? new SysResult((long)counts.Cached, 0) : new SysResult(0, LastErrno());
    }

    /// <summary>
    /// preadv2(2) with RWF_NOWAIT: bytes of <paramref name="file"/> at <paramref name="offset"/> copied only from the page
    /// cache; EAGAIN when the first of them is not there (a read that would wait for the disk), EOPNOTSUPP where the file
    /// system cannot say. May read fewer bytes than asked when only a first part is cached.
    /// </summary>
    public static SysResult PreadCached(SafeHandle file, Span<byte> buffer, long offset)
    {
        using var lease = FdLease.Acquire(file);
        nint n;
        fixed (byte* p = buffer)
        {
            var segment = new IoSegment((nint)p, buffer.Length);
            do { n = Libc.preadv2(lease.Fd, &segment, 1, offset, Libc.RWF_NOWAIT); } while (n < 0 && LastErrno() == EINTR);
        }
        return Result(n);
    }

    /// <summary>Pages (of <see cref="PageSize"/>) that hold bytes [offset, offset+length).</summary>
    public static long PagesSpanned(long offset, long length)
        => length <= 0 ? 0 : (offset + length + PageSize - 1) / PageSize - offset / PageSize;

    /// <summary>tee(2): duplicates up to <paramref name="count"/> bytes from the head of one pipe into another; the source keeps them.</summary>
    public static SysResult Tee(int pipeIn, int pipeOut, long count, uint flags)
    {
        nint n;
        do { n = Libc.tee(pipeIn, pipeOut, (nuint)count, flags); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    /// <summary>splice(2) from a pipe into a file at <paramref name="offset"/> (advanced by what was written); the file's own position is untouched.</summary>
    public static SysResult SpliceToFile(int pipeRead, int fileFd, ref long offset, long count, uint flags)
    {
        off_t off = offset;
        long n;
        do { n = LibC.splice(pipeRead, null, fileFd, &off, (size_t)(ulong)count, flags); } while (n < 0 && LastErrno() == EINTR);
        offset = off;
        return Result(n);
    }
}
