using System.Diagnostics;

namespace ZcProxy.Core.Transport.Loops;

/// <summary>
/// The proxy's monotonic clock (as nginx's cached time): on an event loop's thread, the time its current turn started
/// (read once after each epoll_wait); elsewhere <see cref="Stopwatch.GetTimestamp"/>. A proxied request read the clock
/// about 12 times (access log, upstream timings, retries, pool, limits), ~1 % of its CPU at 1 KiB; on the loop it is now
/// one read per turn, shared by the requests of that turn. The cost: a time read on the loop is up to one turn early
/// (microseconds under load), so durations are measured from when the turn's events arrived. Deadlines are armed with
/// a fresh reading (<see cref="EventLoop.Arm"/>): a timeout never fires early. Wall-clock time (GetUtcNow) is not cached.
/// </summary>
internal sealed class LoopClock : TimeProvider
{
    public static readonly LoopClock Instance = new();

    private LoopClock() { }

    public override long GetTimestamp() => Timestamp();

    /// <summary>The current turn's start on a loop thread, else a fresh reading (Stopwatch's frequency).</summary>
    public static long Timestamp() => EventLoop.Current is { } loop ? loop.TurnStarted : Stopwatch.GetTimestamp();

    /// <summary>Time since <paramref name="start"/> (a <see cref="Timestamp"/>); never negative (a start read fresh on another thread may be later than this turn's start).</summary>
    public static TimeSpan Elapsed(long start) => Between(start, Timestamp());

    /// <summary>Time from <paramref name="start"/> to <paramref name="end"/>, never negative.</summary>
    public static TimeSpan Between(long start, long end) => end > start ? Stopwatch.GetElapsedTime(start, end) : TimeSpan.Zero;
}
