using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>
/// Checked wrappers over <see cref="Libc"/>: EINTR is retried; data-moving calls return a
/// <see cref="SysResult"/>, setup calls throw <see cref="ErrnoException"/>.
/// Fds are raw ints here; callers hold a SafeHandle reference (DangerousAddRef) while using them.
/// </summary>
internal static unsafe partial class Syscalls
{
    private const int EINTR = (int)Errno.EINTR;

    public static SysResult SendFile(int outFd, int inFd, ref long offset, long count)
    {
        long off = offset;
        nint n;
        do { n = Libc.sendfile(outFd, inFd, &off, (nuint)count); } while (n < 0 && LastErrno() == EINTR);
        offset = off;
        return Result(n);
    }

    /// <summary>splice between a pipe and a socket/file with no explicit offsets (both fds' own positions are used).</summary>
    public static SysResult Splice(int fdIn, int fdOut, long count, uint flags)
    {
        nint n;
        do { n = Libc.splice(fdIn, null, fdOut, null, (nuint)count, flags); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    /// <summary>splice from a pipe into a file at an explicit offset (advanced on success).</summary>
    public static SysResult SpliceToFile(int pipeIn, int fileFd, ref long fileOffset, long count, uint flags)
    {
        long off = fileOffset;
        nint n;
        do { n = Libc.splice(pipeIn, null, fileFd, &off, (nuint)count, flags); } while (n < 0 && LastErrno() == EINTR);
        fileOffset = off;
        return Result(n);
    }

    public static SysResult Tee(int pipeIn, int pipeOut, long count, uint flags)
    {
        nint n;
        do { n = Libc.tee(pipeIn, pipeOut, (nuint)count, flags); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    public static SysResult Recv(int fd, Span<byte> buffer, int flags)
    {
        nint n;
        fixed (byte* p = buffer)
            do { n = Libc.recv(fd, p, (nuint)buffer.Length, flags); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    public static SysResult Send(int fd, ReadOnlySpan<byte> buffer, int flags)
    {
        nint n;
        fixed (byte* p = buffer)
            do { n = Libc.send(fd, p, (nuint)buffer.Length, flags | LinuxConstants.MSG_NOSIGNAL); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    public static SysResult Pread(SafeHandle file, Span<byte> buffer, long offset)
    {
        bool added = false;
        try
        {
            file.DangerousAddRef(ref added);
            int fd = (int)file.DangerousGetHandle();
            nint n;
            fixed (byte* p = buffer)
                do { n = Libc.pread(fd, p, (nuint)buffer.Length, offset); } while (n < 0 && LastErrno() == EINTR);
            return Result(n);
        }
        finally { if (added) file.DangerousRelease(); }
    }

    public static SysResult Pwrite(SafeHandle file, ReadOnlySpan<byte> buffer, long offset)
    {
        bool added = false;
        try
        {
            file.DangerousAddRef(ref added);
            int fd = (int)file.DangerousGetHandle();
            nint n;
            fixed (byte* p = buffer)
                do { n = Libc.pwrite(fd, p, (nuint)buffer.Length, offset); } while (n < 0 && LastErrno() == EINTR);
            return Result(n);
        }
        finally { if (added) file.DangerousRelease(); }
    }

    /// <summary>A non-blocking, close-on-exec pipe: (read end, write end).</summary>
    public static (FileDescriptor Read, FileDescriptor Write) CreatePipe()
    {
        int* fds = stackalloc int[2];
        if (Libc.pipe2(fds, LinuxConstants.O_NONBLOCK | LinuxConstants.O_CLOEXEC) != 0) throw ErrnoException.FromLastError("pipe2");
        return (new FileDescriptor(fds[0]), new FileDescriptor(fds[1]));
    }

    /// <summary>Sets a pipe's capacity; returns the size the kernel granted (it may round up, or refuse above pipe-max-size).</summary>
    public static int SetPipeSize(FileDescriptor pipe, int bytes)
    {
        int r = Libc.fcntl(pipe.Fd, LinuxConstants.F_SETPIPE_SZ, bytes);
        if (r < 0) throw ErrnoException.FromLastError("fcntl(F_SETPIPE_SZ)");
        return r;
    }

    public static int GetPipeSize(FileDescriptor pipe)
    {
        int r = Libc.fcntl(pipe.Fd, LinuxConstants.F_GETPIPE_SZ, 0);
        if (r < 0) throw ErrnoException.FromLastError("fcntl(F_GETPIPE_SZ)");
        return r;
    }

    public static int GetFlags(int fd)
    {
        int r = Libc.fcntl(fd, LinuxConstants.F_GETFL, 0);
        if (r < 0) throw ErrnoException.FromLastError("fcntl(F_GETFL)");
        return r;
    }

    /// <summary>open(2) with the given flags (O_CLOEXEC always added), e.g. O_RDONLY|O_DIRECT, which .NET's FileOptions cannot express.</summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle Open(string path, int flags, int mode = 0)
    {
        int fd;
        do { fd = Libc.open(path, flags | LinuxConstants.O_CLOEXEC, mode); } while (fd < 0 && LastErrno() == EINTR);
        if (fd < 0) throw new ErrnoException($"open({path})", LastErrno());
        return new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>posix_fadvise returns the error number instead of setting errno.</summary>
    public static void Fadvise(SafeHandle file, long offset, long length, int advice)
    {
        bool added = false;
        try
        {
            file.DangerousAddRef(ref added);
            int r = Libc.posix_fadvise((int)file.DangerousGetHandle(), offset, length, advice);
            if (r != 0) throw new ErrnoException("posix_fadvise", r);
        }
        finally { if (added) file.DangerousRelease(); }
    }

    public static FileDescriptor EpollCreate()
    {
        int fd = Libc.epoll_create1(LinuxConstants.EPOLL_CLOEXEC);
        if (fd < 0) throw ErrnoException.FromLastError("epoll_create1");
        return new FileDescriptor(fd);
    }

    /// <summary>epoll_ctl with a 64-bit user token; op is EPOLL_CTL_ADD/MOD/DEL. Returns errno (0 on success).</summary>
    public static int EpollControl(FileDescriptor epoll, int op, int fd, uint events, ulong token)
    {
        byte* ev = stackalloc byte[16];
        *(uint*)ev = events;
        *(ulong*)(ev + LinuxConstants.EpollEventDataOffset) = token;
        return Libc.epoll_ctl(epoll.Fd, op, fd, ev) == 0 ? 0 : LastErrno();
    }

    /// <summary>Waits for events; fills (events, token) pairs and returns their count (0 on timeout or EINTR).</summary>
    public static int EpollWait(FileDescriptor epoll, Span<(uint Events, ulong Token)> ready, int timeoutMs)
    {
        int size = LinuxConstants.EpollEventSize, dataOffset = LinuxConstants.EpollEventDataOffset;
        byte* buf = stackalloc byte[size * ready.Length];
        int n = Libc.epoll_wait(epoll.Fd, buf, ready.Length, timeoutMs);
        if (n < 0)
        {
            int errno = LastErrno();
            if (errno == EINTR) return 0;
            throw new ErrnoException("epoll_wait", errno);
        }
        for (int i = 0; i < n; i++)
            ready[i] = (*(uint*)(buf + i * size), *(ulong*)(buf + i * size + dataOffset));
        return n;
    }

    public static FileDescriptor EventFd()
    {
        int fd = Libc.eventfd(0, LinuxConstants.EFD_CLOEXEC | LinuxConstants.EFD_NONBLOCK);
        if (fd < 0) throw ErrnoException.FromLastError("eventfd");
        return new FileDescriptor(fd);
    }

    private static SysResult Result(nint n) => n >= 0 ? new SysResult(n, 0) : new SysResult(0, LastErrno());

    private static int LastErrno() => Marshal.GetLastPInvokeError();
}
