using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Per-connection state of the zero-copy transport: the client socket, its reactor registration, and the one abort path that wakes every wait of this connection.
/// Splice pipes are leased per body from <see cref="SplicePipePool"/>, never kept by an idle connection.
/// Also set as a connection feature, so the request middleware finds it from HttpContext.Features.
/// </summary>
internal sealed class ZeroCopyConnection : IAsyncDisposable
{
    private readonly ConnectionContext _context;
    private readonly Socket _socket;
    private readonly IDuplexPipe _originalTransport;
    private readonly CancellationTokenSource _aborted = new();
    private readonly CancellationTokenRegistration _closedRegistration;
    private readonly object _lock = new();
    private readonly List<ReactorRegistration> _sourceRegistrations = [];
    private int _abortedFlag;

    public ZeroCopyConnection(ConnectionContext context, Socket socket, ZeroCopyTransport transport)
    {
        _context = context;
        _socket = socket;
        Transport = transport;
        _originalTransport = context.Transport;
        ClientReadiness = transport.Reactor.Register(socket.SafeHandle);
        Output = new ZeroCopyOutputWriter(this);
        DuplexPipe = new Duplex(_originalTransport.Input, Output);
        transport.ConnectionOpened();
        _closedRegistration = context.ConnectionClosed.UnsafeRegister(static s => ((ZeroCopyConnection)s!).OnClosed(), this);
    }

    public ZeroCopyTransport Transport { get; }
    /// <summary>The client socket's handle: lease it (<see cref="FdLease"/>) around each syscall, never across an await.</summary>
    public System.Runtime.InteropServices.SafeHandle ClientHandle => _socket.SafeHandle;
    public ReactorRegistration ClientReadiness { get; }
    public ZeroCopyOutputWriter Output { get; }
    public IDuplexPipe DuplexPipe { get; }
    /// <summary>Cancelled when the connection is aborted or closed: every wait of this connection observes it.</summary>
    public CancellationToken Aborted => _aborted.Token;
    public bool IsAborted => Volatile.Read(ref _abortedFlag) != 0;

    /// <summary>Registers a body source's fd for readiness; a connection abort fails its waits too.</summary>
    public ReactorRegistration RegisterSource(System.Runtime.InteropServices.SafeHandle source)
    {
        var registration = Transport.Reactor.Register(source);
        lock (_lock) _sourceRegistrations.Add(registration);
        if (IsAborted) registration.Fail(new ConnectionAbortedException("the client connection was aborted"));
        return registration;
    }

    public void UnregisterSource(ReactorRegistration registration)
    {
        lock (_lock) _sourceRegistrations.Remove(registration);
        registration.Dispose();
    }

    /// <summary>
    /// Aborts the client connection with a reset (a truncated body must never look complete) and wakes every
    /// wait of this connection.
    /// </summary>
    public void Abort(Exception reason)
    {
        if (Interlocked.Exchange(ref _abortedFlag, 1) != 0) return;
        try { _socket.LingerState = new LingerOption(true, 0); } catch (Exception e) when (e is ObjectDisposedException or SocketException) { }
        WakeAll(reason);
        _context.Abort(new ConnectionAbortedException(reason.Message, reason));
    }

    private void OnClosed()
    {
        Interlocked.Exchange(ref _abortedFlag, 1);
        WakeAll(new ConnectionAbortedException("the client connection was closed"));
    }

    private void WakeAll(Exception reason)
    {
        try { _aborted.Cancel(); } catch (ObjectDisposedException) { }
        ClientReadiness.Fail(reason);
        ReactorRegistration[] sources;
        lock (_lock) sources = [.. _sourceRegistrations];
        foreach (var source in sources) source.Fail(reason);
    }

    public async ValueTask DisposeAsync()
    {
        _closedRegistration.Dispose();
        Output.Complete();
        ClientReadiness.Dispose(); // out of epoll (if the socket is still open)
        _aborted.Dispose();
        Transport.ConnectionClosed();
        // Our writer never used the transport's own output: completing it lets the transport shut the socket down.
        await _originalTransport.Output.CompleteAsync();
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }
}
