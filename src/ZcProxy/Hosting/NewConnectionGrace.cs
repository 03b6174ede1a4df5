using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ZcProxy.Hosting;

/// <summary>
/// A connection accepted moments before a graceful stop (SIGTERM) gets a short grace to send its first request.
/// Kestrel's drain closes every connection that has no request in progress, and one accepted a few milliseconds
/// before the listener was unbound usually has its request bytes in the socket, unread: closing it resets a
/// client that did nothing wrong. Under socket activation (systemd holds the port across a restart) that is the only
/// way a client can see the restart at all. This hands Kestrel's HTTP layer a close request that waits until the
/// connection is <see cref="Grace"/> old; by then its first request is in progress and is served (with
/// Connection: close), while older idle keep-alive connections close at once, as before.
/// </summary>
internal sealed class NewConnectionGrace : IConnectionLifetimeNotificationFeature, IDisposable
{
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);

    private readonly IConnectionLifetimeNotificationFeature _inner;
    private readonly TimeProvider _time;
    private readonly long _acceptedAt;
    // No timer until a close request has to wait: every idle keep-alive connection holds one of these.
    private readonly CancellationTokenSource _closeRequested = new();
    private readonly CancellationTokenRegistration _registration;
    private ITimer? _graceTimer;

    public NewConnectionGrace(IConnectionLifetimeNotificationFeature inner, TimeProvider time)
    {
        _inner = inner;
        _time = time;
        _acceptedAt = time.GetTimestamp();
        ConnectionClosedRequested = _closeRequested.Token;
        _registration = inner.ConnectionClosedRequested.UnsafeRegister(static state => ((NewConnectionGrace)state!).OnCloseRequested(), this);
    }

    public CancellationToken ConnectionClosedRequested { get; set; }

    public void RequestClose() => _inner.RequestClose();

    private void OnCloseRequested()
    {
        var remaining = Grace - _time.GetElapsedTime(_acceptedAt);
        try
        {
            if (remaining <= TimeSpan.Zero) _closeRequested.Cancel();
            else _graceTimer = _time.CreateTimer(static s => ((NewConnectionGrace)s!).PassCloseRequest(), this, remaining, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // The connection ended while the close request was on its way.
        }
    }

    private void PassCloseRequest()
    {
        try { _closeRequested.Cancel(); }
        catch (ObjectDisposedException) { } // the connection ended within its grace
    }

    public void Dispose()
    {
        _registration.Dispose();
        _graceTimer?.Dispose();
        _closeRequested.Dispose();
    }
}

internal static class NewConnectionGraceExtensions
{
    /// <summary>Before the HTTP layer (and after nothing that needs the original feature): see <see cref="NewConnectionGrace"/>.</summary>
    public static void UseNewConnectionGrace(this ListenOptions listenOptions, TimeProvider time) =>
        listenOptions.Use(next => async connection =>
        {
            if (connection.Features.Get<IConnectionLifetimeNotificationFeature>() is not { } inner)
            {
                await next(connection);
                return;
            }
            using var grace = new NewConnectionGrace(inner, time);
            connection.Features.Set<IConnectionLifetimeNotificationFeature>(grace);
            await next(connection);
        });
}
