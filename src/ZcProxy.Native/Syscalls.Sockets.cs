using System.Buffers.Binary;
using System.Net;
using Tmds.Linux;

namespace ZcProxy.Native;

/// <summary>Socket calls of the transport's own listener and connections: accept, shutdown, options, addresses.</summary>
internal static unsafe partial class Syscalls
{
    public static int SHUT_WR => LibC.SHUT_WR;
    public static int SHUT_RDWR => LibC.SHUT_RDWR;
    private const int SockAddrMax = 128; // sizeof(struct sockaddr_storage)

    /// <summary>accept4(2) of one pending connection, non-blocking and close-on-exec; the peer's address when it is IP.</summary>
    public static SysResult Accept(int listenFd, out IPEndPoint? peer)
    {
        byte* addr = stackalloc byte[SockAddrMax];
        socklen_t length = SockAddrMax;
        int fd;
        do { fd = LibC.accept4(listenFd, (sockaddr*)addr, &length, LibC.SOCK_NONBLOCK | LibC.SOCK_CLOEXEC); } while (fd < 0 && LastErrno() == EINTR);
        if (fd < 0)
        {
            peer = null;
            return new SysResult(0, LastErrno());
        }
        peer = ToEndPoint(new ReadOnlySpan<byte>(addr, Math.Min((int)length, SockAddrMax)));
        return new SysResult(fd, 0);
    }

    public static SysResult Recv(int fd, Span<byte> buffer, int flags)
    {
        long n;
        fixed (byte* p = buffer)
            do { n = LibC.recv(fd, p, buffer.Length, flags); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    /// <summary>
    /// recv(2) with MSG_TRUNC: drops up to <paramref name="length"/> bytes of a TCP socket's receive queue in the kernel,
    /// never copied to user space (tcp(7)); the count dropped, 0 at the peer's FIN.
    /// </summary>
    public static SysResult Discard(int fd, int length)
    {
        long n;
        do { n = LibC.recv(fd, null, length, LibC.MSG_TRUNC | LibC.MSG_DONTWAIT); } while (n < 0 && LastErrno() == EINTR);
        return Result(n);
    }

    /// <summary>getsockname(2) as an IP endpoint (null for other families).</summary>
    public static IPEndPoint? LocalEndPoint(int fd)
    {
        byte* addr = stackalloc byte[SockAddrMax];
        socklen_t length = SockAddrMax;
        if (LibC.getsockname(fd, (sockaddr*)addr, &length) != 0) return null;
        return ToEndPoint(new ReadOnlySpan<byte>(addr, Math.Min((int)length, SockAddrMax)));
    }

    /// <summary>shutdown(2); errors (ENOTCONN after a reset) are of no interest to a closing connection.</summary>
    public static int Shutdown(int fd, int how) => LibC.shutdown(fd, how) == 0 ? 0 : LastErrno();

    /// <summary>TCP_NODELAY, as Kestrel sets it; false when the socket refused it (it works on, just with Nagle).</summary>
    public static bool SetNoDelay(int fd)
    {
        int one = 1;
        return LibC.setsockopt(fd, LibC.IPPROTO_TCP, LibC.TCP_NODELAY, &one, sizeof(int)) == 0;
    }

    /// <summary>SO_LINGER {on, 0}: close(2) then sends RST instead of FIN (a truncated body must never look complete).</summary>
    public static bool SetLingerZero(int fd)
    {
        var value = new linger { l_onoff = 1, l_linger = 0 };
        return LibC.setsockopt(fd, LibC.SOL_SOCKET, LibC.SO_LINGER, &value, sizeof(linger)) == 0;
    }

    /// <summary>
    /// TCP_NOTSENT_LOWAT: the socket takes bytes (and polls writable) only while fewer than <paramref name="bytes"/> of
    /// what was written to it wait unsent; false when the socket refused it (it works on with the kernel's default).
    /// </summary>
    public static bool SetNotSentLowWatermark(int fd, int bytes)
        => LibC.setsockopt(fd, LibC.IPPROTO_TCP, LibC.TCP_NOTSENT_LOWAT, &bytes, sizeof(int)) == 0;

    /// <summary>The socket's TCP_NOTSENT_LOWAT (0: the kernel's default); -1 on error.</summary>
    public static int NotSentLowWatermark(int fd)
    {
        int value = 0, length = sizeof(int);
        return LibC.getsockopt(fd, LibC.IPPROTO_TCP, LibC.TCP_NOTSENT_LOWAT, &value, (socklen_t*)&length) == 0 ? value : -1;
    }

    /// <summary>Bytes written to a TCP socket that it has not sent yet (ioctl SIOCOUTQNSD); -1 on error.</summary>
    public static int BytesUnsent(int fd)
    {
        const int SIOCOUTQNSD = 0x894B; // linux/sockios.h, the same on every architecture
        int n = 0;
        return LibC.ioctl(fd, SIOCOUTQNSD, &n) == 0 ? n : -1;
    }

    /// <summary>Bytes waiting in the socket's receive queue (ioctl FIONREAD); -1 on error.</summary>
    public static int BytesAvailable(int fd)
    {
        int n = 0;
        return LibC.ioctl(fd, LibC.FIONREAD, &n) == 0 ? n : -1;
    }

    /// <summary>
    /// Bytes written to a TCP socket that its peer has not acknowledged yet, unsent ones included (ioctl SIOCOUTQ,
    /// which is TIOCOUTQ); -1 on error. 0 means every byte written is in the peer's kernel.
    /// </summary>
    public static int BytesUnacknowledged(int fd)
    {
        int n = 0;
        return LibC.ioctl(fd, LibC.TIOCOUTQ, &n) == 0 ? n : -1;
    }

    /// <summary>
    /// Bytes ever written to a TCP socket that its kernel took: those the peer acknowledged (TCP_INFO's tcpi_bytes_acked,
    /// from 0 on an accepted socket) plus those still queued (SIOCOUTQ); -1 on error (not TCP). Read in that order, so an
    /// acknowledgement between the two calls makes the sum low, never high.
    /// </summary>
    public static long BytesTakenByKernel(int fd)
    {
        const int TcpInfo = 11, BytesAckedOffset = 120, InfoSize = 256; // struct tcp_info (linux/tcp.h), stable ABI
        byte* info = stackalloc byte[InfoSize];
        socklen_t length = InfoSize;
        if (LibC.getsockopt(fd, LibC.IPPROTO_TCP, TcpInfo, info, &length) != 0 || length < BytesAckedOffset + sizeof(long)) return -1;
        long acked = *(long*)(info + BytesAckedOffset);
        int queued = BytesUnacknowledged(fd);
        return queued < 0 ? -1 : acked + queued;
    }

    internal static IPEndPoint? ToEndPoint(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 2) return null;
        ushort family = BinaryPrimitives.ReadUInt16LittleEndian(sockaddr); // sa_family_t is host order (little endian on x64/arm64)
        if (family == LibC.AF_INET && sockaddr.Length >= 8)
            return new IPEndPoint(new IPAddress(sockaddr.Slice(4, 4)), BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]));
        if (family == LibC.AF_INET6 && sockaddr.Length >= 28)
        {
            uint scope = BinaryPrimitives.ReadUInt32LittleEndian(sockaddr[24..]);
            return new IPEndPoint(new IPAddress(sockaddr.Slice(8, 16), scope), BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]));
        }
        return null;
    }
}
