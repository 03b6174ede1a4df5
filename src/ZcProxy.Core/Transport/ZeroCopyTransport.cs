using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Transport;

/// <summary>
/// What all zero-copy connections share: the readiness reactor, the splice pipe pool, the metrics, and the
/// scratch buffer handed to Kestrel for hole bytes (never read by anyone, so sharing it is safe).
/// </summary>
public sealed class ZeroCopyTransport
{
    public const int ScratchSize = 1 << 20;

    public ZeroCopyTransport(ReadinessReactor reactor, SplicePipePool pipes, ProxyMetrics metrics)
    {
        Reactor = reactor;
        Pipes = pipes;
        Metrics = metrics;
    }

    public ReadinessReactor Reactor { get; }
    public SplicePipePool Pipes { get; }
    public ProxyMetrics Metrics { get; }
    internal byte[] Scratch { get; } = GC.AllocateUninitializedArray<byte>(ScratchSize, pinned: true);

    /// <summary>Connections served right now (for leak checks).</summary>
    public int OpenConnections => Volatile.Read(ref _openConnections);
    private int _openConnections;
    internal void ConnectionOpened() => Interlocked.Increment(ref _openConnections);
    internal void ConnectionClosed() => Interlocked.Decrement(ref _openConnections);
}
