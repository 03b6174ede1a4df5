using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>
/// Raw libc entry points. Callers outside this assembly use the checked wrappers (<see cref="Syscalls"/>),
/// which retry EINTR and turn errno into <see cref="ErrnoException"/>.
/// </summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int close(int fd);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int poll(Syscalls.PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint sendfile(int outFd, int inFd, long* offset, nuint count);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint splice(int fdIn, long* offIn, int fdOut, long* offOut, nuint len, uint flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint tee(int fdIn, int fdOut, nuint len, uint flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int pipe2(int* fds, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int open(string path, int flags, int mode);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint pread(int fd, byte* buf, nuint count, long offset);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint pwrite(int fd, byte* buf, nuint count, long offset);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int posix_fadvise(int fd, long offset, long len, int advice);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint recv(int fd, byte* buf, nuint len, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint send(int fd, byte* buf, nuint len, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint sendmsg(int fd, MsgHdr* msg, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint writev(int fd, IoVec* iov, int iovcnt);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint read(int fd, byte* buf, nuint count);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint write(int fd, byte* buf, nuint count);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int epoll_create1(int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int epoll_ctl(int epfd, int op, int fd, byte* ev);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int epoll_wait(int epfd, byte* events, int maxEvents, int timeoutMs);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int eventfd(uint initval, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int accept4(int fd, byte* addr, int* addrLen, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int shutdown(int fd, int how);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int setsockopt(int fd, int level, int name, void* value, int length);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int getsockname(int fd, byte* addr, int* addrLen);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int ioctl(int fd, nuint request, int* arg);
}
