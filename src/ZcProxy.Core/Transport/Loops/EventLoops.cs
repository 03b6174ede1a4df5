using Microsoft.Extensions.Logging;

namespace ZcProxy.Core.Transport.Loops;

/// <summary>
/// The transport's event loops, one per core: accepted connections are spread over them round-robin, and a
/// connection's waits (and, later, its upstream sockets') stay on its loop for its whole life.
/// </summary>
internal sealed class EventLoops : IDisposable
{
    private readonly EventLoop[] _loops;
    private int _next = -1;

    public EventLoops(ILogger<EventLoop>? log = null) : this(Environment.ProcessorCount, log) { }

    public EventLoops(int count, ILogger<EventLoop>? log = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        _loops = new EventLoop[count];
        for (int i = 0; i < count; i++) _loops[i] = new EventLoop(i, log);
    }

    public IReadOnlyList<EventLoop> All => _loops;

    /// <summary>The loop for the next connection.</summary>
    public EventLoop Next() => _loops[(int)((uint)Interlocked.Increment(ref _next) % (uint)_loops.Length)];

    /// <summary>Fds registered over all loops (for tests and leak checks).</summary>
    public int RegistrationCount => _loops.Sum(l => l.RegistrationCount);

    public void Dispose()
    {
        foreach (var loop in _loops) loop.Dispose();
    }
}
