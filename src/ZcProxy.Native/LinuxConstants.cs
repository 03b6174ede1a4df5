namespace ZcProxy.Native;

/// <summary>
/// The flag values the proxy uses, read from Tmds.LibC, whose runtime assembly is the one built for the running
/// architecture (O_DIRECT is 0x4000 on x86_64 and 0x10000 on arm64). Properties, not constants: a compile-time
/// constant would freeze one architecture's value into the caller. Typed as the callers pass them (epoll events and
/// splice flags unsigned). NativeLayoutTests checks every one against the C headers of x86_64 and arm64.
/// </summary>
internal static class LinuxConstants
{
    public static int O_RDONLY => Tmds.Linux.LibC.O_RDONLY;
    public static int O_WRONLY => Tmds.Linux.LibC.O_WRONLY;
    public static int O_NONBLOCK => Tmds.Linux.LibC.O_NONBLOCK;
    public static int O_CLOEXEC => Tmds.Linux.LibC.O_CLOEXEC;
    public static int O_DIRECT => Tmds.Linux.LibC.O_DIRECT;

    public static int F_GETFL => Tmds.Linux.LibC.F_GETFL;
    public static int F_SETFL => Tmds.Linux.LibC.F_SETFL;
    public static int F_SETPIPE_SZ => Tmds.Linux.LibC.F_SETPIPE_SZ;
    public static int F_GETPIPE_SZ => Tmds.Linux.LibC.F_GETPIPE_SZ;

    public static uint SPLICE_F_MOVE => (uint)Tmds.Linux.LibC.SPLICE_F_MOVE;
    public static uint SPLICE_F_NONBLOCK => (uint)Tmds.Linux.LibC.SPLICE_F_NONBLOCK;

    public static int MSG_PEEK => Tmds.Linux.LibC.MSG_PEEK;
    public static int MSG_DONTWAIT => Tmds.Linux.LibC.MSG_DONTWAIT;
    public static int MSG_NOSIGNAL => Tmds.Linux.LibC.MSG_NOSIGNAL;
    public static int MSG_MORE => Tmds.Linux.LibC.MSG_MORE;

    public static int EPOLL_CLOEXEC => Tmds.Linux.LibC.EPOLL_CLOEXEC;
    public static int EPOLL_CTL_ADD => Tmds.Linux.LibC.EPOLL_CTL_ADD;
    public static int EPOLL_CTL_DEL => Tmds.Linux.LibC.EPOLL_CTL_DEL;
    public static int EPOLL_CTL_MOD => Tmds.Linux.LibC.EPOLL_CTL_MOD;
    public static uint EPOLLIN => (uint)Tmds.Linux.LibC.EPOLLIN;
    public static uint EPOLLOUT => (uint)Tmds.Linux.LibC.EPOLLOUT;
    public static uint EPOLLERR => (uint)Tmds.Linux.LibC.EPOLLERR;
    public static uint EPOLLHUP => (uint)Tmds.Linux.LibC.EPOLLHUP;
    public static uint EPOLLRDHUP => (uint)Tmds.Linux.LibC.EPOLLRDHUP;
    public static uint EPOLLONESHOT => (uint)Tmds.Linux.LibC.EPOLLONESHOT;
    public static uint EPOLLET => (uint)Tmds.Linux.LibC.EPOLLET;

    public static int EFD_CLOEXEC => Tmds.Linux.LibC.EFD_CLOEXEC;
    public static int EFD_NONBLOCK => Tmds.Linux.LibC.EFD_NONBLOCK;

    public static int POSIX_FADV_DONTNEED => Tmds.Linux.LibC.POSIX_FADV_DONTNEED;
    public static int POSIX_FADV_SEQUENTIAL => Tmds.Linux.LibC.POSIX_FADV_SEQUENTIAL;
}
