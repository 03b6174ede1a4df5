using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;

namespace ZcProxy.Core.Transport;

/// <summary>
/// One listening socket of ZcProxy's transport: accept4(2) on a non-blocking fd, readiness waits on a loop, each
/// accepted connection registered with the next loop. Bound by System.Net.Sockets (IPv4, IPv6 dual-mode,
/// SO_REUSEADDR as Kestrel does it) or taken over from systemd (socket activation).
/// </summary>
internal sealed partial class ZeroCopyListener : IConnectionListener
{
    private const int Backlog = 512; // Kestrel's socket transport default
    private readonly Socket? _socket;
    private readonly FileDescriptor? _inherited;
    private readonly System.Runtime.InteropServices.SafeHandle _handle;
    private readonly LoopSocket _readiness;
    private readonly ZeroCopyTransport _transport;
    private readonly ILogger _log;
    private readonly bool _specificAddress;
    private volatile bool _unbound;

    private ZeroCopyListener(Socket? socket, FileDescriptor? inherited, EndPoint endPoint, ZeroCopyTransport transport, ILogger log)
    {
        _socket = socket;
        _inherited = inherited;
        _handle = socket is not null ? socket.SafeHandle : inherited!;
        EndPoint = endPoint;
        _specificAddress = endPoint is IPEndPoint ip && !ip.Address.Equals(IPAddress.Any) && !ip.Address.Equals(IPAddress.IPv6Any);
        _transport = transport;
        _log = log;
        _readiness = transport.Loops.All[0].Register(_handle);
    }

    public EndPoint EndPoint { get; }

    public static ZeroCopyListener Bind(EndPoint endPoint, ZeroCopyTransport transport, ILogger log)
    {
        switch (endPoint)
        {
            case FileHandleEndPoint handle:
            {
                // A socket systemd bound and listens on: ours from now on (closed with the listener, as Kestrel does).
                var fd = new FileDescriptor((int)handle.FileHandle);
                Syscalls.SetNonBlocking(fd.Fd);
                var bound = Syscalls.LocalEndPoint(fd.Fd) ?? throw new NotSupportedException($"fd {handle.FileHandle} is not an IP socket");
                return new ZeroCopyListener(null, fd, bound, transport, log);
            }
            case IPEndPoint ip:
            {
                var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    if (ip.Address.Equals(IPAddress.IPv6Any)) socket.DualMode = true;
                    try { socket.Bind(new IPEndPoint(ip.Address, ip.Port)); }
                    catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
                    {
                        throw new AddressInUseException(e.Message, e);
                    }
                    socket.Listen(Backlog);
                    socket.Blocking = false;
                    var local = (IPEndPoint)socket.LocalEndPoint!;
                    return new ZeroCopyListener(socket, null, new ZeroCopyEndPoint(local.Address, local.Port), transport, log);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            }
            default: throw new NotSupportedException($"ZcProxy's transport cannot listen on {endPoint}");
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (!_unbound)
        {
            int sequence = _readiness.ReadSequence;
            SysResult r;
            IPEndPoint? peer;
            if (!FdLease.TryAcquire(_handle, out var lease)) return null;
            using (lease) r = Syscalls.Accept(lease.Fd, out peer);
            if (r.Ok) return Accepted((int)r.Bytes, peer);
            switch ((Errno)r.Errno)
            {
                case Errno.EAGAIN:
                    try { await _readiness.WaitReadableAsync(sequence, cancellationToken); }
                    catch (IOException) when (_unbound) { return null; }
                    break;
                case Errno.ECONNABORTED or Errno.EPERM or Errno.EPROTO: break; // that one connection is gone; take the next
                case Errno.EMFILE or Errno.ENFILE or Errno.ENOBUFS or Errno.ENOMEM:
                    // Out of fds or memory: the pending connection stays queued; try again shortly (edge-triggered, no new event would come).
                    LogAcceptFailed(_log, EndPoint, r.ToException("accept4").Message);
                    await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
                    break;
                default:
                    if (_unbound) return null;
                    throw r.ToException("accept4");
            }
        }
        return null;
    }

    private ZeroCopyConnection Accepted(int fd, IPEndPoint? peer)
    {
        var handle = new FileDescriptor(fd);
        try
        {
            Syscalls.SetNoDelay(fd);
            var local = _specificAddress ? EndPoint : Syscalls.LocalEndPoint(fd);
            return new ZeroCopyConnection(handle, _transport.Loops.Next(), _transport, local, peer);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Stops accepting (a pending AcceptAsync returns null) and closes the listening socket.</summary>
    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        if (_unbound) return default;
        _unbound = true;
        _readiness.Fail(new ObjectDisposedException(nameof(ZeroCopyListener)));
        _readiness.Loop.Unregister(_readiness, fdStaysOpen: false);
        _socket?.Dispose();
        _inherited?.Dispose();
        return default;
    }

    public ValueTask DisposeAsync() => UnbindAsync();

    [LoggerMessage(EventId = 2010, Level = LogLevel.Error, Message = "accepting on {EndPoint} failed: {Reason}; retrying")]
    private static partial void LogAcceptFailed(ILogger logger, EndPoint endPoint, string reason);
}
