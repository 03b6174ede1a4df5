using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Tmds.Linux;

namespace ZcProxy.Native;

/// <summary>Outgoing connections without .NET's socket engine: a non-blocking connect(2) whose completion the caller waits for on its event loop.</summary>
internal static unsafe partial class Syscalls
{
    /// <summary>
    /// socket(2) (non-blocking, close-on-exec, TCP_NODELAY) and connect(2) to <paramref name="endPoint"/>. Ok: the socket
    /// (its fd in <see cref="SysResult.Bytes"/>, owned by <paramref name="socket"/>) is connecting (EINPROGRESS) or already
    /// connected; wait until it is writable, then read <see cref="SocketError(int)"/>. Failed: nothing is left open.
    /// </summary>
    public static SysResult ConnectNonBlocking(IPEndPoint endPoint, out FileDescriptor? socket)
    {
        socket = null;
        int family = endPoint.AddressFamily == AddressFamily.InterNetworkV6 ? LibC.AF_INET6 : LibC.AF_INET;
        int fd = LibC.socket(family, LibC.SOCK_STREAM | LibC.SOCK_NONBLOCK | LibC.SOCK_CLOEXEC, 0);
        if (fd < 0) return new SysResult(0, LastErrno());
        var handle = new FileDescriptor(fd);
        SetNoDelay(fd);
        byte* addr = stackalloc byte[SockAddrMax];
        int length = WriteSockAddr(endPoint, new Span<byte>(addr, SockAddrMax));
        int r;
        do { r = LibC.connect(fd, (sockaddr*)addr, length); } while (r < 0 && LastErrno() == EINTR);
        if (r < 0 && LastErrno() is int errno && errno != (int)Errno.EINPROGRESS)
        {
            handle.Dispose();
            return new SysResult(0, errno);
        }
        socket = handle;
        return new SysResult(fd, 0);
    }

    /// <summary>getsockopt(SO_ERROR): 0 once a non-blocking connect succeeded, else its errno (ECONNREFUSED...).</summary>
    public static int SocketError(int fd)
    {
        int error = 0;
        socklen_t length = sizeof(int);
        return LibC.getsockopt(fd, LibC.SOL_SOCKET, LibC.SO_ERROR, &error, &length) == 0 ? error : LastErrno();
    }

    /// <summary>getpeername(2) as an IP endpoint (null for other families or an unconnected socket).</summary>
    public static IPEndPoint? RemoteEndPoint(int fd)
    {
        byte* addr = stackalloc byte[SockAddrMax];
        socklen_t length = SockAddrMax;
        if (LibC.getpeername(fd, (sockaddr*)addr, &length) != 0) return null;
        return ToEndPoint(new ReadOnlySpan<byte>(addr, Math.Min((int)length, SockAddrMax)));
    }

    /// <summary>struct sockaddr_in / sockaddr_in6 for <paramref name="endPoint"/>; returns its length.</summary>
    internal static int WriteSockAddr(IPEndPoint endPoint, Span<byte> sockaddr)
    {
        sockaddr.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(sockaddr[2..], (ushort)endPoint.Port);
        if (endPoint.AddressFamily == AddressFamily.InterNetworkV6)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(sockaddr, (ushort)LibC.AF_INET6); // sa_family_t is host order
            endPoint.Address.TryWriteBytes(sockaddr.Slice(8, 16), out _);
            BinaryPrimitives.WriteUInt32LittleEndian(sockaddr[24..], (uint)endPoint.Address.ScopeId);
            return 28;
        }
        BinaryPrimitives.WriteUInt16LittleEndian(sockaddr, (ushort)LibC.AF_INET);
        endPoint.Address.TryWriteBytes(sockaddr.Slice(4, 4), out _);
        return 16;
    }
}
