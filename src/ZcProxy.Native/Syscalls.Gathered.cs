using Tmds.Linux;

namespace ZcProxy.Native;

/// <summary>
/// Gathered sends: many buffers in one syscall. At most <see cref="MaxBuffersPerCall"/> of them are passed at once
/// (a partial write is normal: the caller advances by the returned count and calls again).
/// </summary>
internal static unsafe partial class Syscalls
{
    /// <summary>Far below IOV_MAX (1024): enough to gather a response head and its body segments.</summary>
    public const int MaxBuffersPerCall = 64;

    /// <summary>sendmsg(2) of buffers that are pinned for their whole life (no per-call pinning); MSG_NOSIGNAL always added.</summary>
    public static SysResult SendMessage(int socketFd, ReadOnlySpan<IoSegment> segments, int flags)
    {
        int count = Math.Min(segments.Length, MaxBuffersPerCall);
        fixed (IoSegment* iov = segments)
        {
            // IoSegment has struct iovec's layout (NativeLayoutTests).
            var msg = new msghdr { msg_iov = (iovec*)iov, msg_iovlen = count };
            long n;
            do { n = LibC.sendmsg(socketFd, &msg, flags | LinuxConstants.MSG_NOSIGNAL); } while (n < 0 && LastErrno() == EINTR);
            return Result(n);
        }
    }
}
