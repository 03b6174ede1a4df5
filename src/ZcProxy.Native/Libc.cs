using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>
/// The libc entry points Tmds.LibC (the binding layer, <c>Tmds.Linux.LibC</c>) does not have; each says why.
/// Callers outside this assembly use the checked wrappers (<see cref="Syscalls"/>), which retry EINTR and turn
/// errno into <see cref="SysResult"/> or <see cref="ErrnoException"/>.
/// </summary>
internal static unsafe partial class Libc
{
    /// <summary>Tmds.LibC 0.5.0 has no sendfile(2). off_t is 64-bit on every 64-bit Linux, so one declaration fits x64 and arm64.</summary>
    [LibraryImport("libc", SetLastError = true)]
    internal static partial nint sendfile(int outFd, int inFd, long* offset, nuint count);

    /// <summary>Tmds.LibC 0.5.0 has no tee(2) (glibc 2.5+), which duplicates a pipe's bytes into another pipe without consuming them.</summary>
    [LibraryImport("libc", SetLastError = true)]
    internal static partial nint tee(int fdIn, int fdOut, nuint length, uint flags);

    /// <summary>
    /// cachestat(2) (Linux 6.5) has no glibc wrapper and Tmds.LibC 0.5.0 has no syscall(2): this is syscall(2) with
    /// cachestat's fixed arguments. glibc's syscall() is assembly that only moves registers (it reads no va_list), so
    /// a non-variadic declaration is safe on x86_64 and arm64; the number is <see cref="CacheStatSyscall"/>.
    /// </summary>
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    internal static partial long syscall_cachestat(long number, int fd, CacheStatRange* range, CacheStatCounts* stat, uint flags);

    /// <summary>Tmds.LibC 0.5.0 has no gettid(2) (glibc 2.30+): the kernel id of the calling thread, its /proc/self/task entry.</summary>
    [LibraryImport("libc")]
    internal static partial int gettid();

    [LibraryImport("libc", SetLastError = true)]
    internal static partial nint preadv2(int fd, IoSegment* iov, int iovcnt, long offset, int flags);

    /// <summary>preadv2's flag: read only what the page cache holds; EAGAIN instead of waiting for the disk.</summary>
    internal const int RWF_NOWAIT = 0x00000008;

    /// <summary>
    /// openat2(2) (Linux 5.6) has no glibc wrapper and Tmds.LibC 0.5.0 has no syscall(2): syscall(2) with openat2's fixed
    /// arguments (non-variadic, as <see cref="syscall_cachestat"/>); the number is <see cref="OpenAt2Syscall"/>.
    /// </summary>
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    internal static partial long syscall_openat2(long number, int dirFd, byte* path, OpenHow* how, nuint size);

    /// <summary>__NR_openat2: 437 on x86_64 (syscall_64.tbl) and on arm64 (asm-generic/unistd.h).</summary>
    internal const long OpenAt2Syscall = 437;

    /// <summary>__NR_cachestat: 451 on x86_64 (syscall_64.tbl) and on arm64 (asm-generic/unistd.h), as every syscall since 424.</summary>
    internal const long CacheStatSyscall = 451;
}

/// <summary>struct open_how (include/uapi/linux/openat2.h): the same on every architecture.</summary>
internal struct OpenHow
{
    public ulong Flags;
    public ulong Mode;
    public ulong Resolve;
}

/// <summary>struct cachestat_range (include/uapi/linux/mman.h): the byte range asked about; the same on every architecture.</summary>
internal struct CacheStatRange
{
    public ulong Offset;
    public ulong Length;
}

/// <summary>struct cachestat (include/uapi/linux/mman.h): page counts of the range; the same on every architecture.</summary>
internal struct CacheStatCounts
{
    public ulong Cached;
    public ulong Dirty;
    public ulong Writeback;
    public ulong Evicted;
    public ulong RecentlyEvicted;
}

/// <summary>
/// statx(2) (glibc 2.28, Linux 4.11) on an open fd (empty path + AT_EMPTY_PATH): fstat(2) with one layout on every
/// architecture, which Tmds.LibC 0.5.0 does not bind. Only the fields ZcProxy reads are named; offsets from
/// include/uapi/linux/stat.h (struct statx is 256 bytes).
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 256)]
internal struct StatxBuffer
{
    [System.Runtime.InteropServices.FieldOffset(28)] public ushort Mode;
    [System.Runtime.InteropServices.FieldOffset(32)] public ulong Inode;
    [System.Runtime.InteropServices.FieldOffset(40)] public ulong Size;
    [System.Runtime.InteropServices.FieldOffset(112)] public long MtimeSeconds;
    [System.Runtime.InteropServices.FieldOffset(120)] public uint MtimeNanoseconds;
}

internal static unsafe partial class Libc
{
    [LibraryImport("libc", SetLastError = true)]
    internal static partial int statx(int dirfd, byte* path, int flags, uint mask, StatxBuffer* buffer);

    internal const int AT_EMPTY_PATH = 0x1000;
    /// <summary>STATX_TYPE | STATX_MODE | STATX_MTIME | STATX_INO | STATX_SIZE.</summary>
    internal const uint StatxBasics = 0x1 | 0x2 | 0x40 | 0x100 | 0x200;
}
