using Microsoft.Extensions.DependencyInjection;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Transport;

/// <summary>
/// What all zero-copy connections share: the event loops, the splice pipe pools, the metrics, and the
/// scratch buffer standing for hole bytes (never written by anyone, so sharing it is safe).
/// </summary>
internal sealed class ZeroCopyTransport
{
    public const int ScratchSize = 1 << 20;

    private readonly RuntimeOptions? _options;

    public ZeroCopyTransport(EventLoops loops, SplicePipePool pipes,
        [FromKeyedServices(ZeroCopyTransportExtensions.RelayPipesKey)] SplicePipePool relayPipes, ProxyMetrics metrics, LingeringCounts lingeringCounts,
        RuntimeOptions? options = null)
    {
        _options = options;
        LingeringCounts = lingeringCounts;
        Loops = loops;
        Pipes = pipes;
        RelayPipes = relayPipes;
        Metrics = metrics;
    }

    public EventLoops Loops { get; }
    /// <summary>Pipes for HTTP bodies (response and request bodies).</summary>
    public SplicePipePool Pipes { get; }
    /// <summary>Pipes for relays of upgraded connections (a pool of their own, shared with the stream proxy).</summary>
    public SplicePipePool RelayPipes { get; }
    public ProxyMetrics Metrics { get; }
    /// <summary>The lingering-close settings in force now (read per close: a reload applies to the next one).</summary>
    public LingeringSettings Lingering => LingeringSettings.Of(_options);
    internal LingeringCounts LingeringCounts { get; }
    /// <summary>
    /// Stands for hole bytes: handed to Kestrel as the space a response hole's bytes are "written" to (nobody writes
    /// it), and as the bytes of a spliced request body (an input hole). Zeroed, so a reader that looks at the last
    /// byte of a consumed range (the request-head tap looks for LF) never mistakes it for a head.
    /// </summary>
    internal byte[] Scratch { get; } = GC.AllocateArray<byte>(ScratchSize, pinned: true);

    /// <summary>Size of the output blocks that buffer Kestrel's bytes until a flush sends them.</summary>
    public const int BlockSize = 16 * 1024;
    private const int MaxIdleBlocks = 1024;
    private readonly System.Collections.Concurrent.ConcurrentQueue<byte[]> _blocks = new();
    private int _idleBlocks;
    private int _blocksInUse;

    /// <summary>Blocks rented by connections right now: an idle keep-alive connection holds none (input and output alike).</summary>
    public int BlocksInUse => Volatile.Read(ref _blocksInUse);

    /// <summary>A block on the pinned object heap: its address never changes, so sends need no pinning.</summary>
    internal byte[] RentBlock(int minimum)
    {
        if (minimum > BlockSize) return GC.AllocateUninitializedArray<byte>(minimum, pinned: true);
        Interlocked.Increment(ref _blocksInUse);
        if (_blocks.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _idleBlocks);
            return block;
        }
        return GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);
    }

    internal void ReturnBlock(byte[] block)
    {
        if (block.Length == BlockSize) Interlocked.Decrement(ref _blocksInUse);
        if (block.Length != BlockSize || Interlocked.Increment(ref _idleBlocks) > MaxIdleBlocks)
        {
            if (block.Length == BlockSize) Interlocked.Decrement(ref _idleBlocks);
            return;
        }
        _blocks.Enqueue(block);
    }

    /// <summary>Connections served right now (for leak checks).</summary>
    public int OpenConnections => Volatile.Read(ref _openConnections);
    private int _openConnections;
    internal void ConnectionOpened() => Interlocked.Increment(ref _openConnections);
    internal void ConnectionClosed() => Interlocked.Decrement(ref _openConnections);
}
