using System.Diagnostics;

namespace ZcProxy.Hosting.Systemd;

/// <summary>
/// Pings systemd's watchdog (WATCHDOG=1) at half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises. The pings
/// come from a dedicated thread, but each one is sent only if a heartbeat queued to the thread pool ran since the
/// previous ping: when the pool that serves requests is wedged (blocked or starved), the pings stop and systemd
/// restarts the service, which is the point of having a watchdog at all.
/// </summary>
/// <param name="runOnPool">Queues the heartbeat; the thread pool unless a test stands in for a wedged one.</param>
internal sealed partial class SystemdWatchdog(SdNotifySocket socket, TimeSpan pingInterval, ILogger<SystemdWatchdog> logger,
    Action<Action>? runOnPool = null) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Thread? _thread;
    private long _heartbeatTicks = Stopwatch.GetTimestamp();

    public TimeSpan PingInterval => pingInterval;

    /// <summary>
    /// The ping interval when systemd asked for a watchdog (WATCHDOG_USEC set, and WATCHDOG_PID absent or ours); else null.
    /// </summary>
    public static TimeSpan? IntervalFromEnvironment()
    {
        var watchdogPid = Environment.GetEnvironmentVariable("WATCHDOG_PID");
        if (!string.IsNullOrEmpty(watchdogPid) && watchdogPid != Environment.ProcessId.ToString()) return null;
        if (!long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), out var usec) || usec <= 0) return null;
        return TimeSpan.FromMicroseconds(usec / 2.0);
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _thread = new Thread(PingLoop) { IsBackground = true, Name = "systemd watchdog" };
        _thread.Start();
        LogEnabled(pingInterval.TotalMilliseconds);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        // Keep pinging through the drain (it may take DrainTimeout); the process exit ends the thread.
        return Task.CompletedTask;
    }

    private void PingLoop()
    {
        var token = _stop.Token;
        var wedgedReported = false;
        QueueHeartbeat();
        while (!token.WaitHandle.WaitOne(pingInterval))
        {
            // The heartbeat must have run within the last two intervals: one interval of slack for a busy pool.
            var sinceHeartbeat = Stopwatch.GetElapsedTime(Interlocked.Read(ref _heartbeatTicks));
            if (sinceHeartbeat <= pingInterval * 2)
            {
                socket.Send("WATCHDOG=1");
                wedgedReported = false;
            }
            else if (!wedgedReported)
            {
                wedgedReported = true;
                LogWedged(sinceHeartbeat.TotalMilliseconds);
            }
            QueueHeartbeat();
        }
    }

    private void QueueHeartbeat()
    {
        if (runOnPool is not null) runOnPool(Heartbeat);
        else ThreadPool.UnsafeQueueUserWorkItem(static self => self.Heartbeat(), this, preferLocal: false);
    }

    private void Heartbeat() => Interlocked.Exchange(ref _heartbeatTicks, Stopwatch.GetTimestamp());

    public void Dispose() => _stop.Cancel(); // not disposed: the ping thread may still be waiting on its handle

    [LoggerMessage(EventId = 42, Level = LogLevel.Information, Message = "systemd watchdog: pinging every {IntervalMs} ms")]
    private partial void LogEnabled(double intervalMs);

    [LoggerMessage(EventId = 43, Level = LogLevel.Critical, Message = "systemd watchdog: the thread pool has not run a heartbeat for {ElapsedMs} ms; pings withheld so systemd can restart the service")]
    private partial void LogWedged(double elapsedMs);
}
