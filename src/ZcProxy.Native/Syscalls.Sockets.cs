using System.Buffers.Binary;
using System.Net;

namespace ZcProxy.Native;

/// <summary>Socket calls of the transport's own listener and connections: accept, shutdown, options, addresses.</summary>
internal static unsafe partial class Syscalls
{
    public const int SHUT_RD = 0, SHUT_WR = 1, SHUT_RDWR = 2;
    private const int SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
    private const int SOL_SOCKET = 1, SO_LINGER = 13, IPPROTO_TCP = 6, TCP_NODELAY = 1;
    private const nuint FIONREAD = 0x541B;
    private const ushort AF_INET = 2, AF_INET6 = 10;
    private const int SockAddrMax = 128; // sizeof(struct sockaddr_storage)

    /// <summary>accept4(2) of one pending connection, non-blocking and close-on-exec; the peer's address when it is IP.</summary>
    public static SysResult Accept(int listenFd, out IPEndPoint? peer)
    {
        byte* addr = stackalloc byte[SockAddrMax];
        int length = SockAddrMax;
        int fd;
        do { fd = Libc.accept4(listenFd, addr, &length, SOCK_NONBLOCK | SOCK_CLOEXEC); } while (fd < 0 && LastErrno() == EINTR);
        if (fd < 0)
        {
            peer = null;
            return new SysResult(0, LastErrno());
        }
        peer = ToEndPoint(new ReadOnlySpan<byte>(addr, Math.Min(length, SockAddrMax)));
        return new SysResult(fd, 0);
    }

    /// <summary>getsockname(2) as an IP endpoint (null for other families).</summary>
    public static IPEndPoint? LocalEndPoint(int fd)
    {
        byte* addr = stackalloc byte[SockAddrMax];
        int length = SockAddrMax;
        if (Libc.getsockname(fd, addr, &length) != 0) return null;
        return ToEndPoint(new ReadOnlySpan<byte>(addr, Math.Min(length, SockAddrMax)));
    }

    /// <summary>shutdown(2); errors (ENOTCONN after a reset) are of no interest to a closing connection.</summary>
    public static int Shutdown(int fd, int how) => Libc.shutdown(fd, how) == 0 ? 0 : LastErrno();

    public static void SetNoDelay(int fd)
    {
        int one = 1;
        Libc.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(int));
    }

    /// <summary>SO_LINGER {on, 0}: close(2) then sends RST instead of FIN (a truncated body must never look complete).</summary>
    public static void SetLingerZero(int fd)
    {
        long linger = 1; // struct linger { int l_onoff = 1; int l_linger = 0; }
        Libc.setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(long));
    }

    /// <summary>Bytes waiting in the socket's receive queue (ioctl FIONREAD); -1 on error.</summary>
    public static int BytesAvailable(int fd)
    {
        int n = 0;
        return Libc.ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
    }

    internal static IPEndPoint? ToEndPoint(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 2) return null;
        ushort family = BinaryPrimitives.ReadUInt16LittleEndian(sockaddr); // sa_family_t is host order (little endian on x64/arm64)
        if (family == AF_INET && sockaddr.Length >= 8)
            return new IPEndPoint(new IPAddress(sockaddr.Slice(4, 4)), BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]));
        if (family == AF_INET6 && sockaddr.Length >= 28)
        {
            uint scope = BinaryPrimitives.ReadUInt32LittleEndian(sockaddr[24..]);
            return new IPEndPoint(new IPAddress(sockaddr.Slice(8, 16), scope), BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]));
        }
        return null;
    }
}
