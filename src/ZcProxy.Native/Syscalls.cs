using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace ZcProxy.Native;

/// <summary>
/// Checked wrappers over libc (Tmds.LibC's bindings, and <see cref="Libc"/> for what it lacks): EINTR is retried;
/// data-moving calls return a <see cref="SysResult"/>, setup calls throw <see cref="ErrnoException"/>.
/// Fds are raw ints here; callers hold the SafeHandle open (<see cref="FdLease"/>) while using them.
/// </summary>
internal static unsafe partial class Syscalls
{
    private const int EINTR = (int)Errno.EINTR;

    /// <summary>gettid(2): the calling thread's kernel id (/proc/self/task/ID).</summary>
    public static int GetThreadId() => Libc.gettid();

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
        long n;
        do { n = LibC.splice(fdIn, null, fdOut, null, (size_t)(ulong)count, flags); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    public static SysResult Send(int fd, ReadOnlySpan<byte> buffer, int flags)
    {
        long n;
        fixed (byte* p = buffer)
            do { n = LibC.send(fd, p, buffer.Length, flags | LinuxConstants.MSG_NOSIGNAL); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    public static SysResult Read(int fd, Span<byte> buffer)
    {
        long n;
        fixed (byte* p = buffer)
            do { n = LibC.read(fd, p, buffer.Length); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    public static SysResult Write(int fd, ReadOnlySpan<byte> buffer)
    {
        long n;
        fixed (byte* p = buffer)
            do { n = LibC.write(fd, p, buffer.Length); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    public static SysResult Pread(SafeHandle file, Span<byte> buffer, long offset)
    {
        using var lease = FdLease.Acquire(file);
        long n;
        fixed (byte* p = buffer)
            do { n = LibC.pread(lease.Fd, p, buffer.Length, offset); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    public static SysResult Pwrite(SafeHandle file, ReadOnlySpan<byte> buffer, long offset)
    {
        using var lease = FdLease.Acquire(file);
        long n;
        fixed (byte* p = buffer)
            do { n = LibC.pwrite(lease.Fd, p, buffer.Length, offset); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    /// <summary>pwrite(2) of all of <paramref name="buffer"/> (a short write goes on from where it stopped): its length, or the first failure (a write of 0 bytes is EIO).</summary>
    public static SysResult PwriteAll(SafeHandle file, ReadOnlySpan<byte> buffer, long offset)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            var r = Pwrite(file, buffer[done..], offset + done);
            if (!r.Ok) return r;
            if (r.Bytes == 0) return new SysResult(0, (int)Errno.EIO);
            done += (int)r.Bytes;
        }
        return new SysResult(done, 0);
    }

    /// <summary>A non-blocking, close-on-exec pipe: (read end, write end).</summary>
    public static (FileDescriptor Read, FileDescriptor Write) CreatePipe()
    {
        int* fds = stackalloc int[2];
        if (LibC.pipe2(fds, LinuxConstants.O_NONBLOCK | LinuxConstants.O_CLOEXEC) != 0) throw ErrnoException.FromLastError("pipe2");
        return (new FileDescriptor(fds[0]), new FileDescriptor(fds[1]));
    }

    /// <summary>Sets a pipe's capacity; returns the size the kernel granted (it may round up, or refuse above pipe-max-size).</summary>
    public static int SetPipeSize(FileDescriptor pipe, int bytes)
    {
        int r = LibC.fcntl(pipe.Fd, LinuxConstants.F_SETPIPE_SZ, bytes);
        if (r < 0) throw ErrnoException.FromLastError("fcntl(F_SETPIPE_SZ)");
        return r;
    }

    public static int GetPipeSize(FileDescriptor pipe)
    {
        int r = LibC.fcntl(pipe.Fd, LinuxConstants.F_GETPIPE_SZ);
        if (r < 0) throw ErrnoException.FromLastError("fcntl(F_GETPIPE_SZ)");
        return r;
    }

    /// <summary>Sets O_NONBLOCK on an fd (needed by splice and sendfile, whose EAGAIN the callers wait out).</summary>
    public static void SetNonBlocking(int fd)
    {
        int flags = LibC.fcntl(fd, LinuxConstants.F_GETFL);
        if (flags < 0) throw ErrnoException.FromLastError("fcntl(F_GETFL)");
        if ((flags & LinuxConstants.O_NONBLOCK) != 0) return;
        if (LibC.fcntl(fd, LinuxConstants.F_SETFL, flags | LinuxConstants.O_NONBLOCK) < 0) throw ErrnoException.FromLastError("fcntl(F_SETFL)");
    }

    /// <summary>open(2) with the given flags (O_CLOEXEC always added), e.g. O_RDONLY|O_DIRECT, which .NET's FileOptions cannot express.</summary>
    public static SafeFileHandle Open(string path, int flags)
    {
        // NUL-terminated UTF-8; a long path is rare enough to allocate for.
        int max = Encoding.UTF8.GetMaxByteCount(path.Length) + 1;
        Span<byte> name = max <= 1024 ? stackalloc byte[max] : new byte[max];
        name[Encoding.UTF8.GetBytes(path, name)] = 0;
        int fd;
        fixed (byte* p = name)
            do { fd = LibC.open(p, flags | LinuxConstants.O_CLOEXEC); } while (fd < 0 && LastErrno() == EINTR);
        if (fd < 0) throw new ErrnoException($"open({path})", LastErrno());
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>posix_fadvise returns the error number instead of setting errno.</summary>
    public static void Fadvise(SafeHandle file, long offset, long length, int advice)
    {
        using var lease = FdLease.Acquire(file);
        int r = LibC.posix_fadvise(lease.Fd, offset, length, advice);
        if (r != 0) throw new ErrnoException("posix_fadvise", r);
    }

    /// <summary>
    /// posix_fadvise(SEQUENTIAL) of an open fd (the whole file): its readahead window doubles, and the pages come in through
    /// the kernel's own readahead (large folios). Advice: false when refused, nothing else.
    /// </summary>
    public static bool AdviseSequential(int fd) =>
        LibC.posix_fadvise(fd, 0, 0, LinuxConstants.POSIX_FADV_SEQUENTIAL) == 0;

    public static FileDescriptor EpollCreate()
    {
        int fd = LibC.epoll_create1(LinuxConstants.EPOLL_CLOEXEC);
        if (fd < 0) throw ErrnoException.FromLastError("epoll_create1");
        return new FileDescriptor(fd);
    }

    /// <summary>epoll_ctl with a 64-bit user token; op is EPOLL_CTL_ADD/MOD/DEL. Returns errno (0 on success).</summary>
    public static int EpollControl(FileDescriptor epoll, int op, int fd, uint events, ulong token)
    {
        // struct epoll_event is packed (12 bytes) on x86_64 and naturally aligned (16) on arm64: Tmds.LibC's
        // per-architecture assembly carries the right layout.
        epoll_event ev = default;
        ev.events = (int)events;
        ev.data.u64 = token;
        return LibC.epoll_ctl(epoll.Fd, op, fd, &ev) == 0 ? 0 : LastErrno();
    }

    /// <summary>Waits for events; fills (events, token) pairs and returns their count (0 on timeout or EINTR).</summary>
    public static int EpollWait(FileDescriptor epoll, Span<(uint Events, ulong Token)> ready, int timeoutMs)
    {
        epoll_event* events = stackalloc epoll_event[ready.Length];
        int n = LibC.epoll_wait(epoll.Fd, events, ready.Length, timeoutMs);
        if (n < 0)
        {
            int errno = LastErrno();
            if (errno == EINTR) return 0;
            throw new ErrnoException("epoll_wait", errno);
        }
        for (int i = 0; i < n; i++)
            ready[i] = ((uint)events[i].events, events[i].data.u64);
        return n;
    }

    public static FileDescriptor EventFd()
    {
        int fd = LibC.eventfd(0, LinuxConstants.EFD_CLOEXEC | LinuxConstants.EFD_NONBLOCK);
        if (fd < 0) throw ErrnoException.FromLastError("eventfd");
        return new FileDescriptor(fd);
    }

    /// <summary>Adds 1 to an eventfd's counter (wakes its epoll waiter). A full counter (EAGAIN) already means "signalled".</summary>
    public static void EventFdSignal(FileDescriptor eventFd)
    {
        ulong one = 1;
        var r = Write(eventFd.Fd, new ReadOnlySpan<byte>(&one, sizeof(ulong)));
        if (!r.Ok && !r.WouldBlock) throw r.ToException("write(eventfd)");
    }

    /// <summary>Resets a non-blocking eventfd's counter to zero.</summary>
    public static void EventFdDrain(FileDescriptor eventFd)
    {
        ulong value;
        var r = Read(eventFd.Fd, new Span<byte>(&value, sizeof(ulong)));
        if (!r.Ok && !r.WouldBlock) throw r.ToException("read(eventfd)");
    }

    private static SysResult Result(long n) => n >= 0 ? new SysResult(n, 0) : new SysResult(0, LastErrno());

    private static int LastErrno() => Marshal.GetLastPInvokeError();
}
