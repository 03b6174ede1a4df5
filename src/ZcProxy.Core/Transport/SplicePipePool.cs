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
/// (bounded); any other is closed, since it may hold bytes of a broken body.
/// </summary>
internal sealed partial class SplicePipePool : IDisposable
{
    private const int MaxIdlePipes = 16;
    private const long ShortageLogIntervalMs = 60_000;

    private readonly ConcurrentQueue<SplicePipe> _idle = new();
    private readonly ILogger? _log;
    private readonly Counter? _shortages;
    private readonly int _maxIdle;
    private int _open, _idleCount;
    private long _nextShortageLog;
    private volatile bool _disposed;

    public SplicePipePool(PipeBudget budget, ProxyMetrics? metrics = null, ILogger<SplicePipePool>? log = null)
    {
        Budget = budget;
        _log = log;
        _maxIdle = Math.Min(MaxIdlePipes, budget.MaxPipes);
        if (metrics is not null)
        {
            metrics.Gauge("zcproxy_splice_pipes", "Splice pipes by state: leased to a body in flight, or idle.", ["state"],
                () => [(["leased"], Leased), (["idle"], IdleCount)]);
            metrics.Gauge("zcproxy_splice_pipes_max", "Splice pipes allowed at once (sized against the user's pipe quota).", () => budget.MaxPipes);
            _shortages = metrics.Counter("zcproxy_splice_pipe_shortages_total",
                "Bodies copied instead of spliced because no pipe could be had (all in use, or the kernel's pipe quota used up).");
        }
        if (log is not null) LogBudget(log, budget.PipeSize, budget.MaxPipes, budget.Basis);
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
        try { pipe = SplicePipe.Create(Budget.PipeSize); }
        catch (ErrnoException e) { return Shortage(null, e.Message); }
        // F_SETPIPE_SZ was refused (quota exceeded): the pipe may be down to 2 pages, thousands of calls for a big body.
        if (pipe.Capacity < PipeBudget.KernelDefaultPipeSize)
            return Shortage(pipe, $"the kernel granted a {pipe.Capacity}-byte pipe (the user's pipe quota is used up: fs.pipe-user-pages-soft)");
        return pipe;
    }

    /// <summary>Takes back a leased pipe; closes it after a failed transfer, or unless it is certainly empty and there is room.</summary>
    public void Return(SplicePipe pipe, bool transferComplete)
    {
        if (_disposed || !transferComplete || pipe.Buffered != 0)
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
        long now = Environment.TickCount64, next = Interlocked.Read(ref _nextShortageLog);
        if (_log is not null && now >= next && Interlocked.CompareExchange(ref _nextShortageLog, now + ShortageLogIntervalMs, next) == next)
            LogShortage(_log, why, Budget.MaxPipes);
        return null;
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

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "splice pipes: {Size} bytes each, at most {Max} at once ({Basis})")]
    private static partial void LogBudget(ILogger logger, int size, int max, string basis);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "splice pipes: bodies are copied for now: {Why} (at most {Max} pipes; logged at most once a minute)")]
    private static partial void LogShortage(ILogger logger, string why, int max);
}
