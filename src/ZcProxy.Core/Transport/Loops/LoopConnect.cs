using System.Net;
using ZcProxy.Native;

namespace ZcProxy.Core.Transport.Loops;

/// <summary>An outgoing socket, connected and registered with its loop; the caller owns both (unregister, then dispose).</summary>
internal readonly record struct ConnectedSocket(FileDescriptor Handle, LoopSocket Socket);

/// <summary>How an outgoing connect ended: connected, refused or unreachable (an errno), or timed out.</summary>
internal enum ConnectOutcome { Connected, Failed, TimedOut }

/// <summary>The result of <see cref="LoopConnect.ConnectAsync"/>: the socket, or why there is none.</summary>
internal readonly record struct ConnectResult(ConnectOutcome Outcome, ConnectedSocket Connected, int Errno = 0)
{
    public string Describe(IPEndPoint endPoint) => Outcome switch
    {
        ConnectOutcome.Connected => $"connected to {endPoint}",
        ConnectOutcome.TimedOut => $"connecting to {endPoint} timed out",
        _ => $"connecting to {endPoint} failed: {new ErrnoException("connect", Errno).Message}",
    };
}

/// <summary>
/// A non-blocking connect(2) completed on an event loop: the socket never touches .NET's socket engine, and its
/// readiness is the loop's from the first byte on. Registered right after connect(2) returned EINPROGRESS (an
/// unconnected socket would report a hang-up); the registration's first write event says the connect finished,
/// SO_ERROR says how.
/// </summary>
internal static class LoopConnect
{
    public static async ValueTask<ConnectResult> ConnectAsync(EventLoop loop, IPEndPoint endPoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = Syscalls.ConnectNonBlocking(endPoint, out var handle);
        if (!started.Ok) return new ConnectResult(ConnectOutcome.Failed, default, started.Errno);
        LoopSocket? socket = null;
        try
        {
            socket = loop.Register(handle!);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            try
            {
                // A fresh registration starts at sequence 0, and EPOLL_CTL_ADD reports a connect that already completed.
                while (socket.WriteSequence == 0) await socket.WaitWritableAsync(0, deadline.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                Close(loop, socket, handle!);
                return new ConnectResult(ConnectOutcome.TimedOut, default);
            }
            int error;
            if (!FdLease.TryAcquire(handle!, out var lease)) error = (int)Errno.EBADF;
            else using (lease) error = Syscalls.SocketError(lease.Fd);
            if (error != 0)
            {
                Close(loop, socket, handle!);
                return new ConnectResult(ConnectOutcome.Failed, default, error);
            }
            return new ConnectResult(ConnectOutcome.Connected, new ConnectedSocket(handle!, socket));
        }
        catch
        {
            if (socket is not null) loop.Unregister(socket, fdStaysOpen: false);
            handle!.Dispose();
            throw;
        }
    }

    private static void Close(EventLoop loop, LoopSocket socket, FileDescriptor handle)
    {
        loop.Unregister(socket, fdStaysOpen: false);
        handle.Dispose();
    }
}
