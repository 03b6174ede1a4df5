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
/// (<see cref="SplicePipeUse"/>), each with its own share of the quota, metrics and log lines.
/// </summary>
internal sealed partial class SplicePipePool : IDisposable
{
    private const int MaxIdlePipes = 16;
    private const long ShortageLogIntervalMs = 60_000;

    private readonly ConcurrentQueue<SplicePipe> _idle = new();
    private readonly ILogger? _log;
    private readonly Func<int, SplicePipe> _createPipe;
    private readonly Counter? _shortages;
    private readonly int _maxIdle;
    private readonly string _name, _transfers;
    private int _open, _idleCount;
    private long _nextShortageLog, _nextRefusalLog;
    private volatile bool _disposed;

    /// <param name="createPipe">Makes a pipe of the asked size (tests stand in for a kernel that refuses F_SETPIPE_SZ).</param>
    public SplicePipePool(PipeBudget budget, ProxyMetrics? metrics = null, ILogger<SplicePipePool>? log = null, SplicePipeUse use = SplicePipeUse.Bodies,
        Func<int, SplicePipe>? createPipe = null)
    {
        Budget = budget;
        _createPipe = createPipe ?? SplicePipe.Create;
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
        }
        if (log is not null) LogBudget(log, _name, budget.PipeSize, budget.MaxPipes, budget.Basis);
    }

    public PipeBudget Budget { get; }
    public int IdleCount => Volatile.Read(ref _idleCount);
    public int Leased => Volatile.Read(ref _open) - IdleCount;

    /// <summary>A pipe for one transfer; null when none can be had (the body is then copied).</summary>
    public SplicePipe? TryLease()
    {
        if (_idle.TryDequeue(out var idle))
        {
            Interlocked.Decrement(ref _idleCount);
            return idle;
        }
        if (Interlocked.Increment(ref _open) > Budget.MaxPipes) return Shortage(null, "all pipes are in use");
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

    /// <summary>
    /// Takes back a leased pipe; closes it after a failed transfer, or unless it is certainly empty, full-sized and there
    /// is room. A pipe the kernel would not size (it kept 64 KiB) is closed too: kept idle, it would serve every later
    /// lease at a quarter of the calls' size long after the quota has room again; a new pipe asks the kernel again.
    /// </summary>
    public void Return(SplicePipe pipe, bool transferComplete)
    {
        if (_disposed || !transferComplete || pipe.Buffered != 0 || pipe.Capacity < Budget.PipeSize)
        {
            Close(pipe);
            return;
        }
        if (Interlocked.Increment(ref _idleCount) > _maxIdle)
        {
            Interlocked.Decrement(ref _idleCount);
            Close(pipe);
            return;
        }
        _idle.Enqueue(pipe);
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

    private void Close(SplicePipe pipe)
    {
        pipe.Dispose();
        Interlocked.Decrement(ref _open);
    }

    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryDequeue(out var pipe))
        {
            Interlocked.Decrement(ref _idleCount);
            Close(pipe);
        }
    }

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "{Pool}: {Size} bytes each, at most {Max} at once ({Basis})")]
    private static partial void LogBudget(ILogger logger, string pool, int size, int max, string basis);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "{Pool}: {Transfers} are copied for now: {Why} (at most {Max} pipes; logged at most once a minute)")]
    private static partial void LogShortage(ILogger logger, string pool, string transfers, string why, int max);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Warning, Message = "{Pool}: the kernel refused to size a pipe to {Asked} bytes (F_SETPIPE_SZ: the user's pipe quota nearly used up); splicing through its {Granted} bytes (logged at most once a minute)")]
    private static partial void LogRefused(ILogger logger, string pool, int asked, int granted);
}

/// <summary>Which pool: HTTP bodies (response and request bodies) or relays (TCP streams, upgraded connections).</summary>
internal enum SplicePipeUse { Bodies, Relays }
