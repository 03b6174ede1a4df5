using Microsoft.Extensions.Logging.Abstractions;
using ZcProxy.Hosting.Systemd;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting.Systemd;

/// <summary>
/// The watchdog's point: pings stop while the thread pool is wedged. A wedged pool is simulated by a stand-in
/// that holds the heartbeats back (the real pool cannot be wedged without wedging the test run too).
/// </summary>
public class SystemdWatchdogTests
{
    [Fact]
    public async Task Pings_StopWhileHeartbeatsAreHeldBack_AndResumeWhenTheyRun()
    {
        using var notify = new NotifySocketListener();
        var socket = SdNotifySocket.Create(new DatagramNotifier(notify.Address), notify.Address, NullLogger.Instance)!;
        var wedged = true;
        var heldBack = new System.Collections.Concurrent.ConcurrentQueue<Action>();
        var interval = TimeSpan.FromMilliseconds(50);
        using var watchdog = new SystemdWatchdog(socket, interval, NullLogger<SystemdWatchdog>.Instance,
            heartbeat => { if (Volatile.Read(ref wedged)) heldBack.Enqueue(heartbeat); else ThreadPool.QueueUserWorkItem(_ => heartbeat()); });
        await watchdog.StartAsync(CancellationToken.None);

        // Wedged from the start: the construction-time heartbeat allows at most two intervals of pings, then silence.
        await Poll.UntilAsync(() => heldBack.Count >= 6, "six ping periods with held-back heartbeats");
        var pingsWhileWedged = notify.Texts.Count(t => t == "WATCHDOG=1");
        Assert.InRange(pingsWhileWedged, 0, 2);

        // The pool recovers: the held-back heartbeats run, and pings resume.
        Volatile.Write(ref wedged, false);
        while (heldBack.TryDequeue(out var heartbeat)) heartbeat();
        await Poll.UntilAsync(() => notify.Texts.Count(t => t == "WATCHDOG=1") >= pingsWhileWedged + 3, "pings after recovery");
    }
}
