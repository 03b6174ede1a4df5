using System.Collections.Concurrent;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Splice pipes, leased for one body and returned when it is done: an empty pipe after a complete transfer goes back
/// to the idle set, any other is closed. Bounded, so idle pipes do not pile up.
/// </summary>
internal sealed class SplicePipePool : IDisposable
{
    public const int DefaultPipeCapacity = 1 << 20;
    private readonly ConcurrentQueue<SplicePipe> _idle = new();
    private readonly int _maxIdle;
    private int _idleCount;
    private volatile bool _disposed;

    public SplicePipePool(int maxIdle = 64, int pipeCapacity = DefaultPipeCapacity)
    {
        _maxIdle = maxIdle;
        PipeCapacity = pipeCapacity;
    }

    public int PipeCapacity { get; }
    public int IdleCount => Volatile.Read(ref _idleCount);

    /// <summary>A pipe for one transfer; null when none can be had (the body is then copied).</summary>
    public SplicePipe? TryLease()
    {
        if (_idle.TryDequeue(out var pipe))
        {
            Interlocked.Decrement(ref _idleCount);
            return pipe;
        }
        return SplicePipe.Create(PipeCapacity);
    }

    /// <summary>Takes back a leased pipe; closes it after a failed transfer, or unless it is certainly empty and there is room.</summary>
    public void Return(SplicePipe pipe, bool transferComplete)
    {
        if (_disposed || !transferComplete || pipe.Buffered != 0)
        {
            pipe.Dispose();
            return;
        }
        if (Interlocked.Increment(ref _idleCount) > _maxIdle)
        {
            Interlocked.Decrement(ref _idleCount);
            pipe.Dispose();
            return;
        }
        _idle.Enqueue(pipe);
        if (_disposed) Dispose(); // lost a race with Dispose: do not leave the pipe behind
    }

    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryDequeue(out var pipe))
        {
            Interlocked.Decrement(ref _idleCount);
            pipe.Dispose();
        }
    }
}
