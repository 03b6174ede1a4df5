using System.Collections.Concurrent;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// The bytes of every event-loop turn that ends (<see cref="LoopTurn.Ended"/>) while this is alive, where
/// <paramref name="onlyWhere"/> holds on the thread that ended it (all, if null). Other tests' turns may be among them.
/// </summary>
internal sealed class RecordedTurns : IDisposable
{
    private readonly ConcurrentQueue<long> _bytes = new();
    private readonly Action<long> _record;

    public RecordedTurns(Func<bool>? onlyWhere = null)
    {
        _record = onlyWhere is null ? _bytes.Enqueue : bytes => { if (onlyWhere()) _bytes.Enqueue(bytes); };
        LoopTurn.Ended += _record;
    }

    public IReadOnlyCollection<long> Bytes => _bytes;

    public void Dispose() => LoopTurn.Ended -= _record;
}
