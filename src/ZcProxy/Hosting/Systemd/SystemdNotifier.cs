using System.Diagnostics;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Hosting.Systemd;

/// <summary>
/// Tells systemd what the service is doing (Type=notify, with Type=notify-reload's reload messages):
/// READY=1 once the listeners are bound with the first configuration, RELOADING=1 + MONOTONIC_USEC then
/// READY=1 around each reload (a rejected one too, with STATUS naming the error), STOPPING=1 when SIGTERM
/// starts the drain, and a one-line STATUS for `systemctl status`.
/// </summary>
internal sealed class SystemdNotifier(
    SdNotifySocket socket,
    IHostApplicationLifetime lifetime,
    ConfigLifecycle lifecycle,
    FileConfigProvider config,
    ActiveConnections connections,
    TimeSpan drainTimeout) : IHostedService, IDisposable
{
    /// <summary>How often STATUS is refreshed so the connection count in `systemctl status` stays roughly current.</summary>
    public static readonly TimeSpan StatusRefresh = TimeSpan.FromSeconds(5);

    /// <summary>Time beyond the drain for the rest of the shutdown (flushing logs, disposing the host).</summary>
    public static readonly TimeSpan DrainMargin = TimeSpan.FromSeconds(5);

    private readonly List<CancellationTokenRegistration> _registrations = [];
    private Timer? _statusTimer;
    private volatile string? _lastRejection;
    private volatile bool _stopping;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifecycle.Reloading += OnReloading;
        lifecycle.Reloaded += OnReloaded;
        // ApplicationStarted fires after Kestrel has bound every listener, and the config was loaded before the host was built.
        _registrations.Add(lifetime.ApplicationStarted.Register(() =>
        {
            socket.Send($"READY=1\nSTATUS={Status()}");
            _statusTimer = new Timer(_ => { if (!_stopping) socket.Send($"STATUS={Status()}"); }, null, StatusRefresh, StatusRefresh);
        }));
        // ApplicationStopping is raised by SIGTERM before Kestrel stops accepting and drains. EXTEND_TIMEOUT_USEC
        // keeps systemd from SIGKILLing a drain that a long DrainTimeout lets outlast the unit's TimeoutStopSec=.
        _registrations.Add(lifetime.ApplicationStopping.Register(() =>
        {
            _stopping = true;
            var extendUsec = (long)(drainTimeout + DrainMargin).TotalMicroseconds;
            socket.Send($"STOPPING=1\nEXTEND_TIMEOUT_USEC={extendUsec}\nSTATUS=draining {connections.Count} connections");
        }));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void OnReloading() =>
        socket.Send($"RELOADING=1\nMONOTONIC_USEC={MonotonicMicroseconds()}\nSTATUS=reloading configuration");

    private void OnReloaded(ConfigReloadOutcome outcome)
    {
        _lastRejection = outcome.Applied ? null : DescribeRejection(outcome.Errors);
        socket.Send($"READY=1\nSTATUS={Status()}");
    }

    /// <summary>One line: what is serving, and why the last reload was refused if it was.</summary>
    private string Status()
    {
        var current = config.Current;
        var serving = $"serving {current.Routes.Count} routes, {current.Clusters.Count} clusters, {connections.Count} connections";
        return _lastRejection is { } rejection ? $"{serving}; last reload rejected: {rejection}" : serving;
    }

    private static string DescribeRejection(IReadOnlyList<string> errors)
    {
        var first = errors.Count > 0 ? errors[0] : "unknown error";
        var line = first.ReplaceLineEndings(" ");
        return errors.Count > 1 ? $"{line} (+{errors.Count - 1} more)" : line;
    }

    /// <summary>
    /// CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it. On Linux, Stopwatch reads CLOCK_MONOTONIC
    /// with nanosecond frequency, so no native call is needed.
    /// </summary>
    internal static long MonotonicMicroseconds() =>
        (long)((Int128)Stopwatch.GetTimestamp() * 1_000_000 / Stopwatch.Frequency);

    public void Dispose()
    {
        lifecycle.Reloading -= OnReloading;
        lifecycle.Reloaded -= OnReloaded;
        foreach (var r in _registrations) r.Dispose();
        _statusTimer?.Dispose();
    }
}
