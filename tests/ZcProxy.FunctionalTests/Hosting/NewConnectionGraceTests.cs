using System.Net.Sockets;
using Microsoft.AspNetCore.Connections.Features;
using ZcProxy.Hosting;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Transport;

namespace ZcProxy.Tests.Hosting;

/// <summary>A connection accepted just before a graceful stop still gets its first request answered.</summary>
public class NewConnectionGraceTests
{
    private sealed class KestrelLifetime : IConnectionLifetimeNotificationFeature
    {
        private readonly CancellationTokenSource _cts = new();
        public CancellationToken ConnectionClosedRequested { get => _cts.Token; set => throw new NotSupportedException(); }
        public void RequestClose() => _cts.Cancel();
    }

    [Fact]
    public void CloseRequest_ForAConnectionYoungerThanTheGrace_IsHeldBack()
    {
        var time = new ManualTimeProvider();
        var kestrel = new KestrelLifetime();
        var grace = new NewConnectionGrace(kestrel, time);
        time.Advance(TimeSpan.FromMilliseconds(100));

        grace.RequestClose(); // what Kestrel's drain does to every connection

        Assert.False(grace.ConnectionClosedRequested.IsCancellationRequested);
    }

    /// <summary>The manual clock, counting the timers made through it (they run on real time).</summary>
    private sealed class TimerCountingTime : TimeProvider
    {
        public ManualTimeProvider Clock { get; } = new();
        public int TimersCreated;
        public override long TimestampFrequency => Clock.TimestampFrequency;
        public override long GetTimestamp() => Clock.GetTimestamp();
        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref TimersCreated);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }

    [Fact]
    public void AnIdleConnection_HoldsNoTimer()
    {
        var time = new TimerCountingTime();
        var grace = new NewConnectionGrace(new KestrelLifetime(), time);
        Assert.Equal(0, time.TimersCreated);
    }

    [Fact]
    public async Task CloseRequest_HeldBack_PassesWhenTheGraceEnds()
    {
        var time = new TimerCountingTime();
        var kestrel = new KestrelLifetime();
        var grace = new NewConnectionGrace(kestrel, time);
        time.Clock.Advance(NewConnectionGrace.Grace - TimeSpan.FromMilliseconds(50));

        grace.RequestClose();

        Assert.False(grace.ConnectionClosedRequested.IsCancellationRequested);
        Assert.Equal(1, time.TimersCreated);
        await Poll.UntilAsync(() => grace.ConnectionClosedRequested.IsCancellationRequested, "the close request after the rest of the grace");
    }

    [Fact]
    public void CloseRequest_ForAConnectionOlderThanTheGrace_PassesAtOnce()
    {
        var time = new ManualTimeProvider();
        var kestrel = new KestrelLifetime();
        var grace = new NewConnectionGrace(kestrel, time);
        time.Advance(NewConnectionGrace.Grace);

        grace.RequestClose();

        Assert.True(grace.ConnectionClosedRequested.IsCancellationRequested);
    }

    private sealed class CountingListener : ZcProxy.Core.Transport.ICloseRequestListener
    {
        public int Calls;
        public void OnCloseRequested() => Interlocked.Increment(ref Calls);
    }

    /// <summary>ZcProxy's HTTP/1.1 layer is told by a call, exactly once: the grace makes no source for it.</summary>
    [Fact]
    public void Listener_IsToldOnceWhenTheRequestPasses_AndNoSourceIsMade()
    {
        var time = new ManualTimeProvider();
        var kestrel = new KestrelLifetime();
        var grace = new NewConnectionGrace(kestrel, time);
        var listener = new CountingListener();
        grace.Listen(listener);
        time.Advance(NewConnectionGrace.Grace);

        grace.RequestClose();
        grace.RequestClose();

        Assert.Equal(1, listener.Calls);
        Assert.False(grace.HoldsTokenSource);
        Assert.True(grace.ConnectionClosedRequested.IsCancellationRequested); // asked for after it passed: cancelled already
    }

    [Fact]
    public void Listener_AddedAfterTheRequestPassed_IsToldAtOnce_ButAStoppedOneIsNot()
    {
        var time = new ManualTimeProvider();
        var grace = new NewConnectionGrace(new KestrelLifetime(), time);
        var stopped = new CountingListener();
        grace.Listen(stopped);
        grace.Listen(null);
        time.Advance(NewConnectionGrace.Grace);
        grace.RequestClose();
        Assert.Equal(0, stopped.Calls);

        var late = new CountingListener();
        grace.Listen(late);

        Assert.Equal(1, late.Calls);
    }

    [Fact]
    public void TokenAskedForBeforeTheRequest_IsCancelledWhenItPasses()
    {
        var time = new ManualTimeProvider();
        var grace = new NewConnectionGrace(new KestrelLifetime(), time);
        var token = grace.ConnectionClosedRequested;
        int calls = 0;
        using var registration = token.Register(() => calls++);
        time.Advance(NewConnectionGrace.Grace);

        grace.RequestClose();

        Assert.True(token.IsCancellationRequested);
        Assert.Equal(1, calls);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Stop_RightAfterAccept_TheConnectionsFirstRequestIsServed(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("o");
        using var dir = new ConfigDirectory();
        var main = dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { {{ConfigDirectory.Cluster("c", ("o", origin.Url))}} } }
            """, $$"""  "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }  """);
        var proxy = await InProcessProxy.StartAsync(main);
        await using var _ = proxy;
        var proxyUri = new Uri(proxy.Url);
        using var client = await RawHttpClient.ConnectAsync(proxyUri);
        await Poll.UntilAsync(() => proxy.Get<ZcProxy.Hosting.Systemd.ActiveConnections>().Count == 1, "the connection to be accepted");

        var stopping = proxy.StopAsync(); // SIGTERM's path: unbind, then ask every connection to close
        await Poll.UntilAsync(async () => !await CanConnectAsync(proxyUri.Port), "the listener to be unbound");
        // Kestrel asks idle connections to close right after the unbind. Without the grace this one is closed now:
        // its socket turns readable (EOF). Give that half the grace to happen, then send the request.
        Assert.False(client.Socket.Poll(TimeSpan.FromMilliseconds(NewConnectionGrace.Grace.TotalMilliseconds / 2), SelectMode.SelectRead),
            "the just-accepted connection was closed by the drain before it could send its request");
        await client.SendAsync(RawHttpClient.Get("/grace"));
        var response = await client.ReadResponseAsync();

        Assert.Equal(200, response.Status);
        await stopping;
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    private static async Task<bool> CanConnectAsync(int port)
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await probe.ConnectAsync(System.Net.IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
