using System.Net;
using System.Net.Sockets;
using ZcProxy.Core.Transport;
using ZcProxy.Native;

namespace ZcProxy.Tests.Transport;

public sealed class ReadinessReactorTests
{
    [Fact]
    public async Task Wait_CompletesOnReadiness_IsCancellable_AndFailWakesIt()
    {
        using var reactor = new ReadinessReactor();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var a = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await a.ConnectAsync(listener.LocalEndPoint!);
        using var b = await listener.AcceptAsync();

        using var registration = reactor.Register(a.SafeHandle);
        // Not readable yet: a cancelled wait ends with cancellation, promptly.
        using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50)))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => registration.WaitAsync(LinuxConstants.EPOLLIN, cts.Token));

        var readable = registration.WaitAsync(LinuxConstants.EPOLLIN, CancellationToken.None);
        await b.SendAsync(new byte[] { 1 }, SocketFlags.None);
        uint events = await readable.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotEqual(0u, events & LinuxConstants.EPOLLIN);

        var writable = await registration.WaitAsync(LinuxConstants.EPOLLOUT, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotEqual(0u, writable & LinuxConstants.EPOLLOUT);

        // A second wait that will never be satisfied is ended by Fail (what a connection abort does).
        var second = registration.WaitAsync(LinuxConstants.EPOLLRDHUP, CancellationToken.None);
        registration.Fail(new IOException("connection aborted"));
        await Assert.ThrowsAsync<IOException>(() => second.WaitAsync(TimeSpan.FromSeconds(10)));
        await Assert.ThrowsAsync<IOException>(() => registration.WaitAsync(LinuxConstants.EPOLLIN, CancellationToken.None));
    }

    [Fact]
    public async Task PeerReset_WakesAWaitForNothingButErrors()
    {
        using var reactor = new ReadinessReactor();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var a = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await a.ConnectAsync(listener.LocalEndPoint!);
        var b = await listener.AcceptAsync();
        using var registration = reactor.Register(a.SafeHandle);
        var trouble = registration.WaitAsync(0, CancellationToken.None);
        Assert.False(trouble.IsCompleted);
        b.LingerState = new LingerOption(true, 0);
        b.Close();
        uint events = await trouble.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotEqual(0u, events & (LinuxConstants.EPOLLERR | LinuxConstants.EPOLLHUP));
    }

    [Fact]
    public async Task Dispose_FailsPendingWaits_AndRemovesRegistrations()
    {
        var reactor = new ReadinessReactor();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var registration = reactor.Register(listener.SafeHandle);
        var pending = registration.WaitAsync(LinuxConstants.EPOLLIN, CancellationToken.None);
        registration.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => pending.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, reactor.RegistrationCount);
        reactor.Dispose();
    }
}
