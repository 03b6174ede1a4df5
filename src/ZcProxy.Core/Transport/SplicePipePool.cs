using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Native;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Splice pipes, leased for one body and returned when it is done: an idle keep-alive connection holds none. At most
/// <see cref="PipeBudget.MaxPipes"/> exist at once (leased or idle), each asked for <see cref="PipeBudget.PipeSize"/>;
/// a body that finds no pipe, or gets one the kernel would not size (the user's pipe quota used up by someone else),
/// is copied instead, as HAProxy does past maxpipes. An empty pipe after a complete transfer goes back to the idle set
/// (bounded); any other is closed, since it may hold bytes of a broken body. A pipe the kernel would not resize
/// (F_SETPIPE_SZ refused: the user's pipe quota nearly used up) but that kept the kernel's default 64 KiB is used as
/// it is for that transfer (smaller pipes, more splice calls, never a failed connection), then closed rather than kept idle. Two pools exist: HTTP bodies' and relays'
/// (<see cref="SplicePipeUse"/>), each with its own share of the quota, metrics and log lines. A leased pipe may grow
/// (<see cref="TryGrow"/>: relays' long transfers) within <see cref="PipeBudget.MaxGrown"/>; it comes back grown and is
/// kept idle apart, for the next lease that asks for a grown pipe (a long transfer leases a pipe each time its source
/// runs dry: a shrink on return and a grow on the next lease were two F_SETPIPE_SZ per lease). Idle or leased, a grown
/// pipe counts against <see cref="PipeBudget.MaxGrown"/>, so the pool never holds more than its budget counts.
/// </summary>
internal sealed partial class SplicePipePool : IDisposable
{
    private const int MaxIdlePipes = 16;
    private const long ShortageLogIntervalMs = 60_000;

    private readonly ConcurrentQueue<SplicePipe> _idle = new();
    private readonly ConcurrentQueue<SplicePipe> _idleGrown = new();
    private readonly ILogger? _log;
    private readonly Func<int, SplicePipe> _createPipe;
    private readonly Func<SplicePipe, int, bool> _resizePipe;
    private readonly Counter? _shortages, _growths, _growthsRefused;
    private readonly int _maxIdle;
    private readonly string _name, _transfers;
    private int _open, _idleCount, _idleGrownCount, _grown;
    private long _nextShortageLog, _nextRefusalLog, _nextGrowthRefusalLog;
    private volatile bool _disposed;

    /// <param name="createPipe">Makes a pipe of the asked size (tests stand in for a kernel that refuses F_SETPIPE_SZ).</param>
    /// <param name="resizePipe">Resizes a pipe in use, false when the kernel refuses (tests stand in for such a kernel).</param>
    public SplicePipePool(PipeBudget budget, ProxyMetrics? metrics = null, ILogger<SplicePipePool>? log = null, SplicePipeUse use = SplicePipeUse.Bodies,
        Func<int, SplicePipe>? createPipe = null, Func<SplicePipe, int, bool>? resizePipe = null)
    {
        Budget = budget;
        _createPipe = createPipe ?? SplicePipe.Create;
        _resizePipe = resizePipe ?? (static (pipe, size) => pipe.TryResize(size));
        _log = log;
        _maxIdle = Math.Min(MaxIdlePipes, budget.MaxPipes);
        (_name, _transfers) = use == SplicePipeUse.Relays ? ("relay pipes", "relayed bytes") : ("splice pipes", "bodies");
        if (metrics is not null)
        {
            var (prefix, what) = use == SplicePipeUse.Relays
                ? ("zcproxy_relay_pipe", "Relay pipes (TCP streams, upgraded connections)")
                : ("zcproxy_splice_pipe", "Splice pipes (HTTP bodies)");
            metrics.Gauge(prefix + "s", $"{what} by state: leased to a transfer in flight, or idle.", ["state"],
                () => [(["leased"], Leased), (["idle"], IdleCount)]);
            metrics.Gauge(prefix + "s_max", $"{what} allowed at once (sized against the user's pipe quota).", () => budget.MaxPipes);
            _shortages = metrics.Counter(prefix + "_shortages_total",
                $"{what}: transfers copied instead of spliced because no pipe could be had (all in use, or the kernel's pipe quota used up).");
            if (budget.CanGrow)
            {
                metrics.Gauge(prefix + "s_grown", $"{what} grown past their pool's size for long transfers, now (leased, or idle for the next long transfer).", () => Grown);
                _growths = metrics.Counter(prefix + "_growths_total", $"{what} grown for a long transfer (F_SETPIPE_SZ).");
                _growthsRefused = metrics.Counter(prefix + "_growths_refused_total",
                    $"{what} left at their size for a long transfer: the kernel refused F_SETPIPE_SZ (the user's pipe quota), or as many as the budget allows were grown already.");
            }
        }
        if (log is not null)
        {
            LogBudget(log, _name, budget.PipeSize, budget.MaxPipes, budget.Basis);
            if (budget.CanGrow) LogGrowth(log, _name, budget.GrowSize, PipeBudget.GrowAfterBytes, budget.MaxGrown);
        }
    }

    public PipeBudget Budget { get; }
    public int IdleCount => Volatile.Read(ref _idleCount) + Volatile.Read(ref _idleGrownCount);
    public int Leased => Volatile.Read(ref _open) - IdleCount;
    /// <summary>Pipes grown past <see cref="PipeBudget.PipeSize"/> now, leased or idle.</summary>
    public int Grown => Volatile.Read(ref _grown);

    /// <summary>
    /// A pipe for one transfer; null when none can be had (the body is then copied). <paramref name="grown"/>: a long
    /// transfer's lease, which takes an idle grown pipe first (no F_SETPIPE_SZ); any other takes one only when no
    /// pipe of the pool's size can be had.
    /// </summary>
    public SplicePipe? TryLease(bool grown = false)
    {
        if (grown && TryTakeIdleGrown(out var idle)) return idle;
        if (TryTakeIdle(out idle)) return idle;
        if (Interlocked.Increment(ref _open) > Budget.MaxPipes)
            return TryTakeIdleGrown(out idle) ? Unopened(idle) : Shortage(null, "all pipes are in use");
        SplicePipe pipe;
        try { pipe = _createPipe(Budget.PipeSize); }
        catch (ErrnoException e) { return Shortage(null, e.Message); }
        // F_SETPIPE_SZ was refused (quota exceeded): the pipe may be down to 2 pages, thousands of calls for a big body.
        if (pipe.Capacity < PipeBudget.KernelDefaultPipeSize)
            return Shortage(pipe, $"the kernel granted a {pipe.Capacity}-byte pipe (the user's pipe quota is used up: fs.pipe-user-pages-soft)");
        if (pipe.Capacity < Budget.PipeSize && _log is not null && TakeLogTurn(ref _nextRefusalLog))
            LogRefused(_log, _name, Budget.PipeSize, pipe.Capacity);
        return pipe;
    }

    private bool TryTakeIdle(out SplicePipe pipe)
    {
        if (!_idle.TryDequeue(out pipe!)) return false;
        Interlocked.Decrement(ref _idleCount);
        return true;
    }

    private bool TryTakeIdleGrown(out SplicePipe pipe)
    {
        if (!_idleGrown.TryDequeue(out pipe!)) return false;
        Interlocked.Decrement(ref _idleGrownCount);
        return true;
    }

    /// <summary>An idle pipe handed out after an open that was not made after all: that open is taken back.</summary>
    private SplicePipe Unopened(SplicePipe pipe)
    {
        Interlocked.Decrement(ref _open);
        return pipe;
    }

    /// <summary>
    /// Grows a leased, full-sized pipe to <see cref="PipeBudget.GrowSize"/> (it may hold bytes); false, and the pipe as it
    /// was, when the budget has no growth left or the kernel refuses (the user's pipe quota: warned at most once a minute).
    /// </summary>
    public bool TryGrow(SplicePipe pipe)
    {
        if (!Budget.CanGrow || pipe.Grown || pipe.Capacity != Budget.PipeSize) return false;
        if (Interlocked.Increment(ref _grown) > Budget.MaxGrown)
        {
            Interlocked.Decrement(ref _grown);
            _growthsRefused?.Increment();
            return false;
        }
        if (!_resizePipe(pipe, Budget.GrowSize))
        {
            Interlocked.Decrement(ref _grown);
            _growthsRefused?.Increment();
            if (_log is not null && TakeLogTurn(ref _nextGrowthRefusalLog)) LogGrowthRefused(_log, _name, Budget.GrowSize, pipe.Capacity);
            return false;
        }
        pipe.Grown = true;
        _growths?.Increment();
        return true;
    }

    /// <summary>
    /// Takes back a leased pipe; closes it after a failed transfer, or unless it is certainly empty, full-sized (or
    /// grown) and there is room. A pipe the kernel would not size (it kept 64 KiB) is closed too: kept idle, it would
    /// serve every later lease at a quarter of the calls' size long after the quota has room again; a new pipe asks the
    /// kernel again. A grown pipe stays grown, idle apart for the next grown lease (its growth still counted).
    /// </summary>
    public void Return(SplicePipe pipe, bool transferComplete)
    {
        bool reusable = !_disposed && transferComplete && pipe.Buffered == 0;
        if (!reusable || (pipe.Grown ? pipe.Capacity <= Budget.PipeSize : pipe.Capacity != Budget.PipeSize))
        {
            Close(pipe);
            return;
        }
        if (pipe.Grown)
        {
            // Bounded by the growth budget: at most MaxGrown pipes are grown at all.
            Interlocked.Increment(ref _idleGrownCount);
            _idleGrown.Enqueue(pipe);
        }
        else if (Interlocked.Increment(ref _idleCount) > _maxIdle)
        {
            Interlocked.Decrement(ref _idleCount);
            Close(pipe);
            return;
        }
        else _idle.Enqueue(pipe);
        if (_disposed) Dispose(); // lost a race with Dispose: do not leave the pipe behind
    }

    private SplicePipe? Shortage(SplicePipe? unusable, string why)
    {
        if (unusable is not null) Close(unusable);
        else Interlocked.Decrement(ref _open);
        _shortages?.Increment();
        if (_log is not null && TakeLogTurn(ref _nextShortageLog)) LogShortage(_log, _name, _transfers, why, Budget.MaxPipes);
        return null;
    }

    /// <summary>True for the first caller after the previous log line's minute: such warnings are logged at most once a minute.</summary>
    private static bool TakeLogTurn(ref long nextLog)
    {
        long now = Environment.TickCount64, next = Interlocked.Read(ref nextLog);
        return now >= next && Interlocked.CompareExchange(ref nextLog, now + ShortageLogIntervalMs, next) == next;
    }

    /// <summary>A grown pipe is closed: its growth is free for another.</summary>
    private void FreeGrowth(SplicePipe pipe)
    {
        if (!pipe.Grown) return;
        pipe.Grown = false;
        Interlocked.Decrement(ref _grown);
    }

    private void Close(SplicePipe pipe)
    {
        FreeGrowth(pipe);
        pipe.Dispose();
        Interlocked.Decrement(ref _open);
    }

    public void Dispose()
    {
        _disposed = true;
        while (TryTakeIdle(out var pipe) || TryTakeIdleGrown(out pipe)) Close(pipe);
    }

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "{Pool}: {Size} bytes each, at most {Max} at once ({Basis})")]
    private static partial void LogBudget(ILogger logger, string pool, int size, int max, string basis);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "{Pool}: {Transfers} are copied for now: {Why} (at most {Max} pipes; logged at most once a minute)")]
    private static partial void LogShortage(ILogger logger, string pool, string transfers, string why, int max);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Information, Message = "{Pool}: a direction's pipe grows to {Size} bytes after it moved {After} bytes, at most {Max} grown at once")]
    private static partial void LogGrowth(ILogger logger, string pool, int size, long after, int max);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Warning, Message = "{Pool}: the kernel refused to grow a pipe to {Asked} bytes (F_SETPIPE_SZ: the user's pipe quota nearly used up); the transfer goes on through its {Kept} bytes (logged at most once a minute)")]
    private static partial void LogGrowthRefused(ILogger logger, string pool, int asked, int kept);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Warning, Message = "{Pool}: the kernel refused to size a pipe to {Asked} bytes (F_SETPIPE_SZ: the user's pipe quota nearly used up); splicing through its {Granted} bytes (logged at most once a minute)")]
    private static partial void LogRefused(ILogger logger, string pool, int asked, int granted);
}

/// <summary>Which pool: HTTP bodies (response and request bodies) or relays (TCP streams, upgraded connections).</summary>
internal enum SplicePipeUse { Bodies, Relays }
