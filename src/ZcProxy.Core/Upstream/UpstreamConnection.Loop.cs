using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ZcProxy.Core.Streams;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;

namespace ZcProxy.Core.Upstream;

/// <summary>
/// A loop-native upstream connection: a non-blocking socket registered once, edge-triggered, with the event loop of
/// the client connection that uses it (the pool is kept per loop, so a request and its upstream socket never leave
/// that loop). Reads and writes are direct syscalls; EAGAIN waits on the loop, whose thread runs the continuation.
/// The response head is read as on .NET's sockets (greedily: one recv for a head and a small body). Readiness is tracked in user space: after a short read the socket is known
/// drained, so the next read waits for an edge instead of a recv that would surely EAGAIN; an idle pooled connection
/// whose read sequence moved (data, FIN or RST arrived) is stale without a poll(2).
/// </summary>
internal sealed partial class UpstreamConnection
{
    private bool _drained = true; // nothing can arrive before the first request: the first read waits for an edge
    private int _seenSequence;
    private int _parkedSequence;

    private UpstreamConnection(Socket socket, string destinationKey, LoopSocket readiness)
    {
        Socket = socket;
        DestinationKey = destinationKey;
        Readiness = readiness;
        Stream = new LoopStream(this);
        LastUsed = Stopwatch.GetTimestamp();
    }

    /// <summary>The socket's registration on its event loop; null for a connection on .NET's socket engine.</summary>
    public LoopSocket? Readiness { get; private set; }

    /// <summary>The loop this connection lives on, or null.</summary>
    public EventLoop? Loop => Readiness?.Loop;


    /// <summary>
    /// Connects a non-blocking socket with connect(2) and waits for it on <paramref name="loop"/>: the socket never
    /// touches .NET's socket engine (whose epoll thread would otherwise wake on every event of it).
    /// </summary>
    public static async Task<UpstreamConnection> ConnectOnLoopAsync(EventLoop loop, IPEndPoint endPoint, string destinationKey, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, Blocking = false };
        LoopSocket? readiness = null;
        try
        {
            try { socket.Connect(endPoint); }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress or SocketError.AlreadyInProgress) { }
            // Registered once connecting (an unconnected socket would report a hang-up); a fresh registration starts at
            // sequence 0 and EPOLL_CTL_ADD reports a connect that already completed.
            readiness = loop.Register(socket.SafeHandle);
            while (readiness.WriteSequence == 0) await readiness.WaitWritableAsync(0, cancellationToken);
            int error = (int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
            if (error != 0) throw new SocketException(error == (int)Errno.ECONNREFUSED ? (int)SocketError.ConnectionRefused : error);
            return new UpstreamConnection(socket, destinationKey, readiness);
        }
        catch
        {
            if (readiness is not null) loop.Unregister(readiness, fdStaysOpen: false);
            socket.Dispose();
            throw;
        }
    }

    private async ValueTask SendOnLoopAsync(ReadOnlyMemory<byte> data, bool more, CancellationToken cancellationToken)
    {
        var readiness = Readiness!;
        while (!data.IsEmpty)
        {
            int sequence = readiness.WriteSequence;
            SysResult r;
            if (!FdLease.TryAcquire(Socket.SafeHandle, out var lease)) throw new IOException("the upstream socket was closed");
            using (lease) r = Syscalls.Send(lease.Fd, data.Span, LinuxConstants.MSG_DONTWAIT | (more ? LinuxConstants.MSG_MORE : 0));
            if (r.Ok)
            {
                BytesSent += r.Bytes;
                data = data[(int)r.Bytes..];
            }
            else if (r.WouldBlock) await readiness.WaitWritableAsync(sequence, cancellationToken);
            else throw new IOException($"sending to the upstream failed: {r.ToException("send").Message}", r.ToException("send"));
        }
    }

    /// <summary>One recv of up to <paramref name="buffer"/>'s length, waiting on the loop when nothing is there; 0 at EOF.</summary>
    internal async ValueTask<int> ReceiveOnLoopAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var readiness = Readiness!;
        int received;
        while (!TryReceiveOnLoop(buffer.Span, out received, out int sequence))
        {
            // LoopSocket.WaitReadableAsync(sequence, token) written out here: one state machine per read, not two.
            readiness.ThrowIfFailedOrCanceled(cancellationToken);
            using (readiness.WakeReaderOn(cancellationToken)) await readiness.WaitReadableAsync(sequence);
            readiness.ThrowIfFailedOrCanceled(cancellationToken);
        }
        return received;
    }

    /// <summary>
    /// One recv without waiting: true with the bytes received (0 at EOF), or false when the socket is empty, with the read
    /// sequence to wait past (<see cref="LoopSocket.WaitReadableAsync(int)"/>) before trying again.
    /// </summary>
    private bool TryReceiveOnLoop(Span<byte> buffer, out int received, out int waitSequence)
    {
        var readiness = Readiness!;
        while (true)
        {
            if (KnownEmpty(readiness, out int sequence))
            {
                received = 0;
                waitSequence = sequence;
                return false;
            }
            SysResult r;
            if (!FdLease.TryAcquire(Socket.SafeHandle, out var lease)) throw new IOException("the upstream socket was closed");
            using (lease) r = Syscalls.Recv(lease.Fd, buffer, 0);
            if (r.Ok)
            {
                // A short read emptied the socket: the next read waits for an edge after this snapshot.
                _drained = r.Bytes < buffer.Length;
                _seenSequence = sequence;
                received = (int)r.Bytes;
                waitSequence = 0;
                return true;
            }
            if (!r.WouldBlock) throw new SocketException(r.Errno == (int)Errno.ECONNRESET ? (int)SocketError.ConnectionReset : r.Errno);
            _drained = true;
            _seenSequence = sequence;
        }
    }

    /// <summary>
    /// True when a recv would surely find nothing: the last read emptied the socket and no event came since, with the
    /// read sequence to wait past. A FIN or reset is reported once: after it, recv answers at once (0 or an error), so
    /// never wait for another edge then.
    /// </summary>
    private bool KnownEmpty(LoopSocket readiness, out int sequence)
    {
        sequence = readiness.ReadSequence;
        return _drained && sequence == _seenSequence && readiness.TroubleSeen == 0;
    }

    /// <summary>
    /// The response's last byte left the socket in a read (a recv or a body's splice) that began at read sequence
    /// <paramref name="sequence"/>: nothing more is due before the next request, so the next head read waits for an edge
    /// after it instead of a recv that would surely EAGAIN (a body read to its exact length ends on a full read, which
    /// alone does not say the socket is empty). Bytes an upstream sends past its framing are then read with the next
    /// response and fail its parse, as they would at once. No-op for a connection on .NET's socket engine.
    /// </summary>
    internal void ResponseReadToEnd(int sequence)
    {
        if (Readiness is null) return;
        _drained = true;
        _seenSequence = sequence;
    }

    /// <summary>The same after a recv of this connection's own (<see cref="TryReceiveOnLoop"/> kept its sequence).</summary>
    internal void ResponseReadToEnd() => ResponseReadToEnd(_seenSequence);

    /// <summary>
    /// An idle connection moves to another loop (its own loop's pool had none for a request there): out of the old
    /// epoll set, into the new one. The socket is known empty (the pool checked it), so the next read waits for an edge.
    /// </summary>
    internal void MoveTo(EventLoop loop)
    {
        var old = Readiness!;
        old.Loop.Unregister(old, fdStaysOpen: true);
        Readiness = loop.Register(Socket.SafeHandle);
        _drained = true;
        _seenSequence = 0;
        _parkedSequence = 0;
    }

    /// <summary>Remembers the read sequence when the connection goes idle: any event after it (data, FIN, RST) makes it stale.</summary>
    internal void Park() { if (Readiness is { } readiness) _parkedSequence = readiness.ReadSequence; }

    private bool LooksStaleOnLoop()
    {
        var readiness = Readiness!;
        return readiness.ReadSequence != _parkedSequence || readiness.TroubleSeen != 0 || readiness.Failure is not null;
    }

    /// <summary>The body as a read-only stream for the copy path: recv with waits on the loop.</summary>
    private sealed class LoopStream(UpstreamConnection connection) : ReadOnlyStream
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => buffer.IsEmpty ? ValueTask.FromResult(0) : connection.ReceiveOnLoopAsync(buffer, cancellationToken);
    }
}
