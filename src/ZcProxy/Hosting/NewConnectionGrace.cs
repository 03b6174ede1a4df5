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
/// <para>
/// Nothing to dispose when the connection ends, so no async frame waits for that (it lived as long as the connection:
/// 120 B per idle one): the registration on Kestrel's close request dies with Kestrel's connection, the source has no
/// timer or wait handle, and a grace timer (only during a stop, for at most <see cref="Grace"/>) ends by firing.
/// </para>
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001",
    Justification = "Lives exactly as long as its connection; the source has no timer or wait handle, the grace timer fires once within a second.")]
internal sealed class NewConnectionGrace : IConnectionLifetimeNotificationFeature
{
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);

    private readonly IConnectionLifetimeNotificationFeature _inner;
    private readonly TimeProvider _time;
    private readonly long _acceptedAt;
    // No timer until a close request has to wait: every idle keep-alive connection holds one of these.
    private readonly CancellationTokenSource _closeRequested = new();
    private ITimer? _graceTimer;

    public NewConnectionGrace(IConnectionLifetimeNotificationFeature inner, TimeProvider time)
    {
        _inner = inner;
        _time = time;
        _acceptedAt = time.GetTimestamp();
        ConnectionClosedRequested = _closeRequested.Token;
        _ = inner.ConnectionClosedRequested.UnsafeRegister(static state => ((NewConnectionGrace)state!).OnCloseRequested(), this);
    }

    public CancellationToken ConnectionClosedRequested { get; set; }

    public void RequestClose() => _inner.RequestClose();

    private void OnCloseRequested()
    {
        var remaining = Grace - _time.GetElapsedTime(_acceptedAt);
        if (remaining <= TimeSpan.Zero) _closeRequested.Cancel();
        // Kept in a field: an unreferenced timer may be collected before it fires.
        else _graceTimer ??= _time.CreateTimer(static s => ((NewConnectionGrace)s!)._closeRequested.Cancel(), this, remaining, Timeout.InfiniteTimeSpan);
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
