using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Transport;

/// <summary>
/// A client connection of ZcProxy's own transport (<see cref="ZeroCopyListener"/>): a non-blocking socket fd
/// registered once with one event loop, the pull-based <see cref="ZeroCopyInput"/>, the socket writer
/// <see cref="ZeroCopyOutputWriter"/> (with its body holes), and the one abort path that wakes every wait of this
/// connection. Splice pipes are leased per body from <see cref="SplicePipePool"/>, never kept by an idle connection. It is Kestrel's ConnectionContext and, as a connection feature, what the request middleware finds
/// in HttpContext.Features.
/// </summary>
internal sealed partial class ZeroCopyConnection : ConnectionContext, IDuplexPipe, ILoopSocketTroubleHandler, ILingerOnClose, ILingeringCandidate
{
    // ConnectionClosed's source, made only when asked for (Kestrel's own HTTP layer asks; ZcProxy's does not).
    private OnDemandCancellation _closed;
    // The current request's sources cancelled on close (HTTP/1.x runs one request, and one body hole, at a time): fields,
    // not registrations on ConnectionClosed's source, which would keep that source, its registration list and a node
    // (192 B) for the whole life of every connection that served a request.
    private CancellationTokenSource? _requestAbortedLink, _holeMoveLink;
    // Copy-on-write, swapped with Interlocked: an idle connection (no body source registered) holds the shared empty
    // array, not a list and a lock object of its own.
    private LoopSocket[] _sources = [];
    private int _abortedFlag, _closedFired, _disposed, _tunnel, _lingerOnClose;
    private Exception? _inputFailure;
    private Action? _tunnelAborted;
    private ZeroCopyResponse? _request;

    public ZeroCopyConnection(FileDescriptor socket, EventLoop loop, ZeroCopyTransport transport, EndPoint? local, EndPoint? remote)
    {
        ClientHandle = socket;
        Shared = transport;
        LocalEndPoint = local;
        RemoteEndPoint = remote;
        Input = new ZeroCopyInput(this);
        Output = new ZeroCopyOutputWriter(this);
        // The fd held for the loop thread while registered: its recv and sendmsg there lease nothing per call (FdHold).
        ClientSocket = loop.Register(socket, holdFd: true);
        ClientSocket.Trouble = this;
        transport.ConnectionOpened();
    }

    /// <summary>What all zero-copy connections share: block pool, scratch, pipes, metrics.</summary>
    public ZeroCopyTransport Shared { get; }
    public EventLoop Loop => ClientSocket.Loop;
    /// <summary>The client socket's handle: lease it (<see cref="TryLeaseClient"/>) around each syscall, never across an await.</summary>
    public FileDescriptor ClientHandle { get; }

    /// <summary>The client fd for one burst of syscalls: nothing taken on the loop thread, whose registration holds it (<see cref="FdHold"/>).</summary>
    internal bool TryLeaseClient(out FdLease lease) => FdLease.TryAcquire(ClientHandle, ClientSocket.Hold, out lease);
    /// <summary>The client socket's registration on its loop: readiness sequences and waits.</summary>
    public LoopSocket ClientSocket { get; }
    public ZeroCopyInput Input { get; }
    public ZeroCopyOutputWriter Output { get; }
    /// <summary>Aborted (Kestrel's abort or ZcProxy's): the close resets or has reset the connection.</summary>
    internal bool WasAborted => Volatile.Read(ref _abortedFlag) != 0;
    /// <summary>Aborted, or a tunnel (whose relay ends both directions itself): no lingering close.</summary>
    internal bool AbortedOrTunnel => WasAborted || Volatile.Read(ref _tunnel) != 0;

    /// <summary>
    /// The HTTP layer ends the connection while the client may still be sending (its request body is unread): the close
    /// lingers (<see cref="LingeringClose"/>), unless <c>Limits.LingeringClose</c> is "off".
    /// </summary>
    public void LingerOnClose() => Volatile.Write(ref _lingerOnClose, 1);

    bool ILingeringCandidate.LingeringRuledOut => AbortedOrTunnel || Input.EndOfStream;
    bool ILingeringCandidate.LingerAsked => Volatile.Read(ref _lingerOnClose) != 0;
    bool ILingeringCandidate.HasUnreadBytes() => Input.Buffered > 0 || UnreadBytes() > 0;

    /// <summary>Aborted, or closed by the peer: no more bytes can reach the client.</summary>
    public bool IsAborted => Volatile.Read(ref _abortedFlag) != 0 || Volatile.Read(ref _closedFired) != 0;
    /// <summary>
    /// Cancelled when the connection is aborted or closed (already, when asked for after that). ZcProxy's own per-request
    /// sources use <see cref="CancelOnClose"/> instead: asking for this makes a source the connection keeps.
    /// </summary>
    public CancellationToken Aborted => _closed.Token;

    /// <summary>The close's cancellation ran: what <see cref="Aborted"/>'s IsCancellationRequested says, without making its source.</summary>
    internal bool CloseCancelled => _closed.IsCancelled;

    /// <summary>Someone asked for <see cref="Aborted"/> (or ConnectionClosed), so the connection holds its source.</summary>
    internal bool HoldsClosedSource => _closed.HasSource;

    /// <summary>What reads throw once the connection was aborted or reset; null while it is healthy.</summary>
    internal Exception? InputFailure => Volatile.Read(ref _inputFailure);

    /// <summary>The zero-copy side of the request starting now: one object per connection, reset per request (HTTP/1.x runs them one at a time).</summary>
    public ZeroCopyResponse CurrentRequest(Microsoft.AspNetCore.Http.HttpContext context, Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature kestrelBody)
        => (_request ??= new ZeroCopyResponse(this)).Begin(context, kestrelBody);

    /// <summary>Registers a body source's fd on this connection's loop for readiness; a connection abort fails its waits too.</summary>
    public LoopSocket RegisterSource(System.Runtime.InteropServices.SafeHandle source)
    {
        var registration = Loop.Register(source);
        UpdateSources(registration, static (sources, added) => [.. sources, added]);
        if (IsAborted) registration.Fail(new ConnectionAbortedException("the client connection was aborted"));
        return registration;
    }

    /// <summary>Takes the source's fd off the loop; the fd itself stays open (it belongs to an upstream connection).</summary>
    public void UnregisterSource(LoopSocket registration)
    {
        UpdateSources(registration, s_without);
        Loop.Unregister(registration, fdStaysOpen: true);
    }

    // Made once: a lambda that captured the removed registration was a closure per spliced body.
    private static readonly Func<LoopSocket[], LoopSocket, LoopSocket[]> s_without = static (sources, removed) =>
    {
        int at = Array.IndexOf(sources, removed);
        if (at < 0) return sources;
        if (sources.Length == 1) return [];
        return [.. sources.AsSpan(0, at), .. sources.AsSpan(at + 1)];
    };

    private void UpdateSources(LoopSocket registration, Func<LoopSocket[], LoopSocket, LoopSocket[]> change)
    {
        var sources = Volatile.Read(ref _sources);
        while (true)
        {
            var seen = Interlocked.CompareExchange(ref _sources, change(sources, registration), sources);
            if (seen == sources) return;
            sources = seen;
        }
    }

    /// <summary>
    /// Aborts the client connection with a reset (a truncated body must never look complete) and wakes every
    /// wait of this connection.
    /// </summary>
    public void Abort(Exception reason)
    {
        if (TryLeaseClient(out var lease)) using (lease) Syscalls.SetLingerZero(lease.Fd);
        AbortCore(new ConnectionAbortedException(reason.Message, reason));
    }

    /// <summary>Kestrel's abort (timeouts, server shutdown): both directions shut down, every wait wakes.</summary>
    public override void Abort(ConnectionAbortedException abortReason) => AbortCore(abortReason);

    private void AbortCore(ConnectionAbortedException reason)
    {
        if (Interlocked.Exchange(ref _abortedFlag, 1) != 0) return;
        Volatile.Read(ref _tunnelAborted)?.Invoke(); // before the shutdown: the tunnel ends as stopped, not as failed
        Interlocked.CompareExchange(ref _inputFailure, reason, null);
        if (TryLeaseClient(out var lease)) using (lease) Syscalls.Shutdown(lease.Fd, Syscalls.SHUT_RDWR);
        WakeAll(reason);
        FireConnectionClosed();
    }

    /// <summary>
    /// The connection becomes a tunnel (its request was upgraded, 101 sent): a FIN or reset from the client is from now on
    /// the relay's to pass on, not a close of the HTTP connection (a half-closed tunnel keeps flowing the other way).
    /// Returns the client's bytes already read past the request head, which must reach the upstream first. Kestrel's own
    /// aborts (shutdown, limits) still end the connection: <paramref name="aborted"/> runs first (at once if that happened already).
    /// </summary>
    internal byte[] StartTunnel(Action aborted)
    {
        Volatile.Write(ref _tunnelAborted, aborted);
        Volatile.Write(ref _tunnel, 1);
        if (Volatile.Read(ref _abortedFlag) != 0) aborted();
        return Input.TakeBuffered();
    }

    /// <summary>recv returned 0: the peer finished sending. The connection counts as closed (as with Kestrel's socket transport).</summary>
    internal void OnEndOfStream() => FireConnectionClosed();

    /// <summary>recv failed (reset): reads throw from now on and the connection is closed.</summary>
    internal Exception OnReceiveFailed(ErrnoException error)
    {
        Exception failure = error.Code is Errno.ECONNRESET or Errno.EPIPE or Errno.ETIMEDOUT
            ? new ConnectionResetException(error.Message, error)
            : new ConnectionAbortedException(error.Message, error);
        Interlocked.CompareExchange(ref _inputFailure, failure, null);
        FireConnectionClosed();
        return _inputFailure!;
    }

    /// <summary>
    /// On the loop: the peer hung up or the socket failed, maybe while nobody reads. A half-close (FIN) with request
    /// bytes still unread is not a close yet: those bytes are read first (Kestrel gets them), and the reader reports
    /// the close once it has taken the last of them (<see cref="OnBytesBeforeHangUpTaken"/>): the hang-up is reported
    /// once by epoll, so nobody else would notice it while a request without a body runs and nothing reads.
    /// </summary>
    void ILoopSocketTroubleHandler.OnTrouble(uint bits)
    {
        if ((bits & (EPOLLHUP | EPOLLERR)) == 0 && UnreadBytes() > 0) return;
        OnPeerClosed();
    }

    /// <summary>
    /// The reader took bytes after the peer's FIN was seen: once none are left in the socket, the FIN is next, and the
    /// connection counts as closed as if it had come with no bytes before it (as with Kestrel's socket transport, or
    /// nginx's EPOLLRDHUP check: a client that stops sending mid-request has gone).
    /// </summary>
    internal void OnBytesBeforeHangUpTaken()
    {
        if (Volatile.Read(ref _closedFired) == 0 && UnreadBytes() == 0) OnPeerClosed();
    }

    private void OnPeerClosed()
    {
        if (Volatile.Read(ref _tunnel) != 0) return; // a tunnel's relay passes FIN and reset on itself
        FireConnectionClosed();
    }

    /// <summary>Bytes in the client socket's receive queue (FIONREAD); 0 once the fd is gone.</summary>
    internal int UnreadBytes()
    {
        if (!TryLeaseClient(out var lease)) return 0;
        using (lease) return Syscalls.BytesAvailable(lease.Fd);
    }

    private void FireConnectionClosed()
    {
        if (Interlocked.Exchange(ref _closedFired, 1) != 0) return;
        WakeAll(new ConnectionAbortedException("the client connection was closed"));
        // Posted, never inline: Kestrel's callbacks abort the request and must not run inside our reader or writer.
        Loop.Post(static s => ((ZeroCopyConnection)s!).CancelClosed(), this);
    }

    private void CancelClosed()
    {
        _closed.Cancel();
        CancelLinked(ref _requestAbortedLink);
        CancelLinked(ref _holeMoveLink);

        static void CancelLinked(ref CancellationTokenSource? link)
        {
            try { Interlocked.Exchange(ref link, null)?.Cancel(); } catch (ObjectDisposedException) { }
        }
    }

    /// <summary>
    /// Cancels <paramref name="source"/> when the connection closes, like a registration on <see cref="Aborted"/> (and at
    /// once when that happened already), kept in a field of this connection for the <paramref name="kind"/> of source.
    /// </summary>
    internal void CancelOnClose(CloseLinked kind, CancellationTokenSource source)
    {
        ref var link = ref Linked(kind);
        Interlocked.Exchange(ref link, source);
        // A close that ran before the exchange above did not see the source: the flag is seen here then (full fences).
        if (_closed.IsCancelled && Interlocked.CompareExchange(ref link, null, source) == source) source.Cancel();
    }

    /// <summary>
    /// Ends <see cref="CancelOnClose"/> for <paramref name="source"/>. False when the close took it first: it is cancelled,
    /// or about to be, so it must not be reset and reused.
    /// </summary>
    internal bool StopCancelOnClose(CloseLinked kind, CancellationTokenSource source)
        => Interlocked.CompareExchange(ref Linked(kind), null, source) == source;

    private ref CancellationTokenSource? Linked(CloseLinked kind)
    {
        if (kind == CloseLinked.RequestAborted) return ref _requestAbortedLink;
        return ref _holeMoveLink;
    }

    private void WakeAll(Exception reason)
    {
        foreach (var source in Volatile.Read(ref _sources)) source.Fail(reason);
        if (Volatile.Read(ref _abortedFlag) != 0) ClientSocket.Fail(reason);
        else
        {
            ClientSocket.WakeReader();
            ClientSocket.WakeWriter();
        }
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync(); // nothing of its own (ConnectionContext's default)
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        var lingering = Shared.Lingering;
        bool linger = LingeringClose.Wanted(this, lingering); // before the input lets go of its bytes
        Output.Complete();
        Input.Complete();
        if (linger) await LingeringClose.RunAsync(this, lingering, Shared.LingeringCounts);
        FireConnectionClosed();
        Loop.Unregister(ClientSocket, fdStaysOpen: false);
        ClientHandle.Dispose(); // close(2): FIN, or RST after an abort that asked for one
        Shared.ConnectionClosed();
    }

    // The connection is its own transport pipe (no Duplex object per connection).
    PipeReader IDuplexPipe.Input => Input;
    PipeWriter IDuplexPipe.Output => Output;
}

/// <summary>The per-request sources a connection cancels on close (<see cref="ZeroCopyConnection.CancelOnClose"/>): one of each at a time.</summary>
internal enum CloseLinked
{
    /// <summary>The request's RequestAborted (ZcProxy's HTTP/1.1 layer).</summary>
    RequestAborted,
    /// <summary>The move of a body hole (splice, sendfile) of the output writer.</summary>
    HoleMove,
}
