namespace ZcProxy.Native;

/// <summary>
/// Linux errno values the proxy reacts to or names in messages. Own enum rather than Tmds.LibC's properties: callers
/// match on it (`is Errno.EPIPE or ...`) and messages print its names, which needs constants; the numbers are the
/// same on x86_64 and arm64 (asm-generic/errno*.h), which NativeLayoutTests checks against both.
/// </summary>
internal enum Errno
{
    EPERM = 1, ENOENT = 2, EINTR = 4, EIO = 5, EBADF = 9, EAGAIN = 11, ENOMEM = 12, EACCES = 13,
    EFAULT = 14, EBUSY = 16, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, EMFILE = 24, ENOSPC = 28,
    ENFILE = 23, ESPIPE = 29, EROFS = 30, EPIPE = 32, ENOSYS = 38, EPROTO = 71, ENOTSOCK = 88, EOPNOTSUPP = 95,
    EADDRNOTAVAIL = 99, ENETUNREACH = 101, ECONNABORTED = 103, ECONNRESET = 104, ENOBUFS = 105, ENOTCONN = 107,
    ETIMEDOUT = 110, ECONNREFUSED = 111, EHOSTUNREACH = 113, EALREADY = 114, EINPROGRESS = 115, EDQUOT = 122,
}
