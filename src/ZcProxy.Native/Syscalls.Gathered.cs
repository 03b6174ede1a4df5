using System.Buffers;

namespace ZcProxy.Native;

/// <summary>
/// Gathered writes: many buffers in one syscall. Buffers are pinned only for the duration of the call,
/// and at most <see cref="MaxBuffersPerCall"/> of them are passed at once (a partial write is normal:
/// the caller advances by the returned count and calls again).
/// </summary>
internal static unsafe partial class Syscalls
{
    /// <summary>Far below IOV_MAX (1024): enough to gather a response head and its body segments.</summary>
    public const int MaxBuffersPerCall = 64;

    /// <summary>sendmsg(2) of the buffers, MSG_NOSIGNAL always added (add MSG_DONTWAIT, MSG_MORE as needed).</summary>
    public static SysResult SendMessage(int socketFd, ReadOnlySpan<ReadOnlyMemory<byte>> buffers, int flags)
    {
        int count = Math.Min(buffers.Length, MaxBuffersPerCall);
        IoVec* iov = stackalloc IoVec[count];
        var pins = new MemoryHandle[count];
        try
        {
            Pin(buffers[..count], iov, pins);
            var msg = new MsgHdr { Iov = iov, IovLength = (nuint)count };
            nint n;
            do { n = Libc.sendmsg(socketFd, &msg, flags | LinuxConstants.MSG_NOSIGNAL); } while (n < 0 && LastErrno() == EINTR);
            return Result(n);
        }
        finally { Unpin(pins); }
    }

    /// <summary>sendmsg(2) of buffers that are pinned for their whole life (no per-call pinning); MSG_NOSIGNAL always added.</summary>
    public static SysResult SendMessage(int socketFd, ReadOnlySpan<IoSegment> segments, int flags)
    {
        int count = Math.Min(segments.Length, MaxBuffersPerCall);
        fixed (IoSegment* iov = segments)
        {
            var msg = new MsgHdr { Iov = (IoVec*)iov, IovLength = (nuint)count };
            nint n;
            do { n = Libc.sendmsg(socketFd, &msg, flags | LinuxConstants.MSG_NOSIGNAL); } while (n < 0 && LastErrno() == EINTR);
            return Result(n);
        }
    }

    /// <summary>writev(2) of the buffers (any fd: pipes, files, sockets).</summary>
    public static SysResult WriteGathered(int fd, ReadOnlySpan<ReadOnlyMemory<byte>> buffers)
    {
        int count = Math.Min(buffers.Length, MaxBuffersPerCall);
        IoVec* iov = stackalloc IoVec[count];
        var pins = new MemoryHandle[count];
        try
        {
            Pin(buffers[..count], iov, pins);
            nint n;
            do { n = Libc.writev(fd, iov, count); } while (n < 0 && LastErrno() == EINTR);
            return Result(n);
        }
        finally { Unpin(pins); }
    }

    public static SysResult Read(int fd, Span<byte> buffer)
    {
        nint n;
        fixed (byte* p = buffer)
            do { n = Libc.read(fd, p, (nuint)buffer.Length); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    public static SysResult Write(int fd, ReadOnlySpan<byte> buffer)
    {
        nint n;
        fixed (byte* p = buffer)
            do { n = Libc.write(fd, p, (nuint)buffer.Length); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
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

    /// <summary>Sets O_NONBLOCK on an fd (needed by splice and sendfile, whose EAGAIN the callers wait out).</summary>
    public static void SetNonBlocking(int fd)
    {
        int flags = GetFlags(fd);
        if ((flags & LinuxConstants.O_NONBLOCK) != 0) return;
        if (Libc.fcntl(fd, LinuxConstants.F_SETFL, flags | LinuxConstants.O_NONBLOCK) < 0) throw ErrnoException.FromLastError("fcntl(F_SETFL)");
    }

    private static void Pin(ReadOnlySpan<ReadOnlyMemory<byte>> buffers, IoVec* iov, MemoryHandle[] pins)
    {
        for (int i = 0; i < buffers.Length; i++)
        {
            pins[i] = buffers[i].Pin();
            iov[i].Base = pins[i].Pointer;
            iov[i].Length = (nuint)buffers[i].Length;
        }
    }

    private static void Unpin(MemoryHandle[] pins)
    {
        foreach (var pin in pins) pin.Dispose();
    }
}
