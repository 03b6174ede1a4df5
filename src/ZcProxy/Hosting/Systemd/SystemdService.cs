using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Options;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Hosting.Systemd;

/// <summary>
/// Starts what systemd asked for through the environment: the notifier when NOTIFY_SOCKET is set, the watchdog
/// when WATCHDOG_USEC is too, and reports which socket-activated fd serves which listener.
/// </summary>
internal sealed partial class SystemdService(
    IHostApplicationLifetime lifetime,
    ConfigLifecycle lifecycle,
    FileConfigProvider config,
    ActiveConnections connections,
    SocketActivation activation,
    ISystemdNotifier systemdNotifier,
    IOptions<HostOptions> hostOptions,
    ILoggerFactory loggerFactory) : IHostedService, IDisposable
{
    private readonly ILogger _logger = loggerFactory.CreateLogger("ZcProxy.Hosting.Systemd");
    private SdNotifySocket? _socket;
    private SystemdNotifier? _notifier;
    private SystemdWatchdog? _watchdog;
    private CancellationTokenRegistration _startedRegistration;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Kestrel binds (and claims the inherited fds) after hosted services have started, so report once started.
        _startedRegistration = lifetime.ApplicationStarted.Register(() =>
        {
            foreach (var (socket, use) in activation.Assignments) LogActivated(socket.Fd, socket.LocalEndPoint, use);
        });

        _socket = SdNotifySocket.Create(systemdNotifier, Environment.GetEnvironmentVariable(SdNotifySocket.EnvironmentVariable), _logger);
        if (_socket is null) return;
        _notifier = new SystemdNotifier(_socket, lifetime, lifecycle, config, connections, hostOptions.Value.ShutdownTimeout);
        await _notifier.StartAsync(cancellationToken);
        if (SystemdWatchdog.IntervalFromEnvironment() is { } interval)
        {
            _watchdog = new SystemdWatchdog(_socket, interval, loggerFactory.CreateLogger<SystemdWatchdog>());
            await _watchdog.StartAsync(cancellationToken);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        _startedRegistration.Dispose();
        _watchdog?.Dispose();
        _notifier?.Dispose();
    }

    [LoggerMessage(EventId = 44, Level = LogLevel.Information, Message = "socket activation: fd {Fd} ({EndPoint}) serves {Use}")]
    private partial void LogActivated(int fd, System.Net.EndPoint? endPoint, string use);
}
