using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using ZcProxy.Native;

namespace ZcProxy.Core.Transport.Loops;

/// <summary>A connection taken from a listening socket: its non-blocking fd (now the caller's) and both addresses.</summary>
internal readonly record struct AcceptedSocket(FileDescriptor Handle, IPEndPoint? Peer, IPEndPoint? Local);

/// <summary>
/// A listening socket on an event loop: accept4(2) on a non-blocking fd, waiting for readiness on the loop. Bound by
/// System.Net.Sockets (IPv4, IPv6 dual-mode, SO_REUSEADDR as Kestrel does it) or taken over from systemd (socket
/// activation). The HTTP listeners (<see cref="ZeroCopyListener"/>) and the stream listeners share it.
/// </summary>
internal sealed partial class LoopListener : IAsyncDisposable
{
    private const int Backlog = 512; // Kestrel's socket transport default
    private readonly Socket? _socket;
    private readonly FileDescriptor? _inherited;
    private readonly SafeHandle _handle;
    private readonly LoopSocket _readiness;
    private readonly ILogger _log;
    private readonly bool _specificAddress;
    private volatile bool _unbound;

    private LoopListener(Socket? socket, FileDescriptor? inherited, IPEndPoint local, EventLoop loop, ILogger log)
    {
        _socket = socket;
        _inherited = inherited;
        _handle = socket is not null ? socket.SafeHandle : inherited!;
        LocalEndPoint = local;
        _specificAddress = !local.Address.Equals(IPAddress.Any) && !local.Address.Equals(IPAddress.IPv6Any);
        _log = log;
        _readiness = loop.Register(_handle);
    }

    /// <summary>The bound address (port 0 resolved).</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Binds and listens on <paramref name="endPoint"/>; a busy address throws <see cref="AddressInUseException"/>.</summary>
    public static LoopListener Bind(IPEndPoint endPoint, EventLoop loop, ILogger log)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endPoint.Address.Equals(IPAddress.IPv6Any)) socket.DualMode = true;
            try { socket.Bind(endPoint); }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                throw new AddressInUseException(e.Message, e);
            }
            socket.Listen(Backlog);
            socket.Blocking = false;
            return new LoopListener(socket, null, (IPEndPoint)socket.LocalEndPoint!, loop, log);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A socket systemd bound and listens on: ours from now on (closed with the listener, as Kestrel does).</summary>
    public static LoopListener Adopt(int fd, EventLoop loop, ILogger log)
    {
        var handle = new FileDescriptor(fd);
        try
        {
            Syscalls.SetNonBlocking(fd);
            var bound = Syscalls.LocalEndPoint(fd) ?? throw new NotSupportedException($"fd {fd} is not an IP socket");
            return new LoopListener(null, handle, bound, loop, log);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The next connection (TCP_NODELAY set), or null once the listener is unbound.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<AcceptedSocket?> AcceptAsync(CancellationToken cancellationToken = default)
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
                    LogAcceptFailed(_log, LocalEndPoint, r.ToException("accept4").Message);
                    await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
                    break;
                default:
                    if (_unbound) return null;
                    throw r.ToException("accept4");
            }
        }
        return null;
    }

    private AcceptedSocket Accepted(int fd, IPEndPoint? peer)
    {
        var handle = new FileDescriptor(fd);
        Syscalls.SetNoDelay(fd);
        // A wildcard listener's connections each have their own local address; a specific one's is the listener's.
        return new AcceptedSocket(handle, peer, _specificAddress ? LocalEndPoint : Syscalls.LocalEndPoint(fd));
    }

    /// <summary>Stops accepting (a pending AcceptAsync returns null) and closes the listening socket.</summary>
    public ValueTask UnbindAsync()
    {
        if (_unbound) return default;
        _unbound = true;
        _readiness.Fail(new ObjectDisposedException(nameof(LoopListener)));
        _readiness.Loop.Unregister(_readiness, fdStaysOpen: false);
        _socket?.Dispose();
        _inherited?.Dispose();
        return default;
    }

    public ValueTask DisposeAsync() => UnbindAsync();

    [LoggerMessage(EventId = 2010, Level = LogLevel.Error, Message = "accepting on {EndPoint} failed: {Reason}; retrying")]
    private static partial void LogAcceptFailed(ILogger logger, EndPoint endPoint, string reason);
}
