using System.Text;
using Microsoft.Win32.SafeHandles;

namespace ZcProxy.Native;

/// <summary>What a file is: from statx(2) on its open fd.</summary>
internal readonly record struct FileStatus(bool IsRegular, bool IsDirectory, long Size, long Inode, long MtimeSeconds, uint MtimeNanoseconds);

internal static unsafe partial class Syscalls
{
    private const int S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000;

    /// <summary>open(2) without an exception for the expected failures (a missing file is a 404, not an error): 0, or the errno.</summary>
    public static int TryOpen(string path, int flags, out SafeFileHandle? handle)
    {
        handle = null;
        int max = Encoding.UTF8.GetMaxByteCount(path.Length) + 1;
        Span<byte> name = max <= 1024 ? stackalloc byte[max] : new byte[max];
        name[Encoding.UTF8.GetBytes(path, name)] = 0;
        int fd;
        fixed (byte* p = name)
            do { fd = Tmds.Linux.LibC.open(p, flags | LinuxConstants.O_CLOEXEC); } while (fd < 0 && LastErrno() == EINTR);
        if (fd < 0) return LastErrno();
        handle = new SafeFileHandle(fd, ownsHandle: true);
        return 0;
    }

    /// <summary>AT_FDCWD: a relative path of openat2 is the working directory's.</summary>
    private const int AtFdCwd = -100;

    /// <summary>RESOLVE_CACHED (Linux 5.12): openat2 fails with EAGAIN rather than read anything from the disk to resolve the path.</summary>
    private const ulong ResolveCached = 0x20;

    /// <summary>
    /// open(2) of <paramref name="path"/> only if every step of its lookup is in the kernel's dentry and inode caches
    /// (openat2 with RESOLVE_CACHED): 0 and the handle; EAGAIN when resolving it would read the disk (directory blocks,
    /// inodes), so the caller opens it where waiting is allowed; ENOSYS (before Linux 5.6) or EINVAL (RESOLVE_CACHED
    /// unknown, before 5.12) when the kernel cannot say; else open's own errno.
    /// </summary>
    public static int TryOpenCached(string path, int flags, out SafeFileHandle? handle)
    {
        handle = null;
        int max = Encoding.UTF8.GetMaxByteCount(path.Length) + 1;
        Span<byte> name = max <= 1024 ? stackalloc byte[max] : new byte[max];
        name[Encoding.UTF8.GetBytes(path, name)] = 0;
        var how = new OpenHow { Flags = (ulong)(uint)(flags | LinuxConstants.O_CLOEXEC), Resolve = ResolveCached };
        long fd;
        fixed (byte* p = name)
            do { fd = Libc.syscall_openat2(Libc.OpenAt2Syscall, AtFdCwd, p, &how, (nuint)sizeof(OpenHow)); } while (fd < 0 && LastErrno() == EINTR);
        if (fd < 0) return LastErrno();
        handle = new SafeFileHandle((nint)fd, ownsHandle: true);
        return 0;
    }

    /// <summary>fstat(2) of an open file (through statx with AT_EMPTY_PATH); null with the errno when it fails.</summary>
    public static FileStatus? Status(SafeFileHandle file, out int errno)
    {
        using var lease = FdLease.Acquire(file);
        StatxBuffer buffer;
        byte empty = 0;
        int r;
        do { r = Libc.statx(lease.Fd, &empty, Libc.AT_EMPTY_PATH, Libc.StatxBasics, &buffer); } while (r < 0 && LastErrno() == EINTR);
        errno = r < 0 ? LastErrno() : 0;
        if (r < 0) return null;
        int type = buffer.Mode & S_IFMT;
        return new FileStatus(type == S_IFREG, type == S_IFDIR, (long)buffer.Size, (long)buffer.Inode, buffer.MtimeSeconds, buffer.MtimeNanoseconds);
    }
}
