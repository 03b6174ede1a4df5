using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using ZcProxy.Core.Transport;

namespace ZcProxy.Hosting;

/// <summary>
/// A connection accepted moments before a graceful stop (SIGTERM) gets a short grace to send its first request.
/// Kestrel's drain closes every connection that has no request in progress, and one accepted a few milliseconds
/// before the listener was unbound usually has its request bytes in the socket, unread: closing it resets a
/// client that did nothing wrong. Under socket activation (systemd holds the port across a restart) that is the only
/// way a client can see the restart at all. This hands Kestrel's HTTP layer a close request that waits until the
/// connection is <see cref="Grace"/> old; by then its first request is in progress and is served (with
/// Connection: close), while older idle keep-alive connections close at once, as before.
/// <para>
/// Nothing to dispose when the connection ends, so no async frame waits for that (it lived as long as the connection:
/// 120 B per idle one): the registration on Kestrel's close request dies with Kestrel's connection, the source has no
/// timer or wait handle, and a grace timer (only during a stop, for at most <see cref="Grace"/>) ends by firing.
/// </para>
/// <para>
/// Its own token's source is made only when asked for (Kestrel's HTTP layer, for a connection handed over to it):
/// ZcProxy's HTTP/1.1 layer is told by a call (<see cref="ICloseRequestNotifier"/>), so an idle connection holds no
/// source here and no registration on one (192 B per idle connection, gcdump).
/// </para>
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001",
    Justification = "Lives exactly as long as its connection; the source has no timer or wait handle, the grace timer fires once within a second.")]
internal sealed class NewConnectionGrace : IConnectionLifetimeNotificationFeature, ICloseRequestNotifier
{
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);

    private readonly IConnectionLifetimeNotificationFeature _inner;
    private readonly TimeProvider _time;
    private readonly long _acceptedAt;
    private OnDemandCancellation _closeRequested;
    private ICloseRequestListener? _listener;
    // No timer until a close request has to wait: every idle keep-alive connection holds one of these.
    private ITimer? _graceTimer;

    public NewConnectionGrace(IConnectionLifetimeNotificationFeature inner, TimeProvider time)
    {
        _inner = inner;
        _time = time;
        _acceptedAt = time.GetTimestamp();
        _ = inner.ConnectionClosedRequested.UnsafeRegister(static state => ((NewConnectionGrace)state!).OnCloseRequested(), this);
    }

    /// <summary>Cancelled when the close request passes the grace (already, when asked for after that).</summary>
    public CancellationToken ConnectionClosedRequested
    {
        get => _closeRequested.Token;
        set => throw new NotSupportedException("the grace owns ConnectionClosedRequested");
    }

    /// <summary>Someone asked for <see cref="ConnectionClosedRequested"/>, so the grace holds its source.</summary>
    internal bool HoldsTokenSource => _closeRequested.HasSource;

    public void RequestClose() => _inner.RequestClose();

    public void Listen(ICloseRequestListener? listener)
    {
        Interlocked.Exchange(ref _listener, listener);
        // A close that passed before the exchange above did not see the listener: the flag is seen here then (full fences).
        if (listener is not null && _closeRequested.IsCancelled && Interlocked.CompareExchange(ref _listener, null, listener) == listener)
            listener.OnCloseRequested();
    }

    private void OnCloseRequested()
    {
        var remaining = Grace - _time.GetElapsedTime(_acceptedAt);
        if (remaining <= TimeSpan.Zero) PassCloseRequest();
        // Kept in a field: an unreferenced timer may be collected before it fires.
        else _graceTimer ??= _time.CreateTimer(static s => ((NewConnectionGrace)s!).PassCloseRequest(), this, remaining, Timeout.InfiniteTimeSpan);
    }

    private void PassCloseRequest()
    {
        _closeRequested.Cancel();
        Interlocked.Exchange(ref _listener, null)?.OnCloseRequested(); // whoever takes the listener tells it: once
    }
}

internal static class NewConnectionGraceExtensions
{
    /// <summary>Before the HTTP layer (and after nothing that needs the original feature): see <see cref="NewConnectionGrace"/>.</summary>
    public static void UseNewConnectionGrace(this ListenOptions listenOptions, TimeProvider time) =>
        listenOptions.Use(next => connection =>
        {
            if (connection.Features.Get<IConnectionLifetimeNotificationFeature>() is { } inner)
                connection.Features.Set<IConnectionLifetimeNotificationFeature>(new NewConnectionGrace(inner, time));
            return next(connection);
        });
}
