using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>Flag values from the Linux UAPI headers. Where x86_64 and arm64 differ, both are given.</summary>
internal static class LinuxConstants
{
    private static readonly bool IsArm64 = RuntimeInformation.ProcessArchitecture == Architecture.Arm64;

    public const int O_RDONLY = 0x0;
    public const int O_WRONLY = 0x1;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_TRUNC = 0x200;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;
    /// <summary>0x4000 on x86_64, 0x10000 on arm64.</summary>
    public static int O_DIRECT => IsArm64 ? 0x10000 : 0x4000;

    public const int F_GETFL = 3;
    public const int F_SETFL = 4;
    public const int F_SETPIPE_SZ = 1031;
    public const int F_GETPIPE_SZ = 1032;

    public const uint SPLICE_F_MOVE = 1;
    public const uint SPLICE_F_NONBLOCK = 2;
    public const uint SPLICE_F_MORE = 4;

    public const int MSG_PEEK = 0x2;
    public const int MSG_DONTWAIT = 0x40;
    public const int MSG_NOSIGNAL = 0x4000;
    public const int MSG_MORE = 0x8000;

    public const int EPOLL_CLOEXEC = 0x80000;
    public const int EPOLL_CTL_ADD = 1;
    public const int EPOLL_CTL_DEL = 2;
    public const int EPOLL_CTL_MOD = 3;
    public const uint EPOLLIN = 0x1;
    public const uint EPOLLOUT = 0x4;
    public const uint EPOLLERR = 0x8;
    public const uint EPOLLHUP = 0x10;
    public const uint EPOLLRDHUP = 0x2000;
    public const uint EPOLLONESHOT = 1u << 30;
    public const uint EPOLLET = 1u << 31;

    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;

    public const int POSIX_FADV_SEQUENTIAL = 2;
    public const int POSIX_FADV_DONTNEED = 4;

    /// <summary>struct epoll_event is packed (12 bytes) on x86_64 and naturally aligned (16 bytes) on arm64.</summary>
    public static int EpollEventSize => IsArm64 ? 16 : 12;
    public static int EpollEventDataOffset => IsArm64 ? 8 : 4;
}
