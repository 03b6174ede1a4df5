using System.Collections.Concurrent;

namespace ZcProxy.Core.Transport.Relay;

/// <summary>
/// Stops relays through which no byte moved for their idle timeout (nginx <c>proxy_timeout</c>): one timer for all of
/// them, ticking every <see cref="Tick"/>, so a relay pays nothing per byte for its timeout (the sweeper compares byte
/// counts between ticks). A relay is stopped between its timeout and its timeout plus one tick.
/// </summary>
internal sealed class RelayIdleSweeper : IDisposable
{
    public static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);
    private readonly ConcurrentDictionary<SpliceRelay, byte> _relays = new();
    private readonly TimeProvider _time;
    private readonly ITimer _timer;
    private int _sweeping;

    public RelayIdleSweeper(TimeProvider time)
    {
        _time = time;
        _timer = time.CreateTimer(static s => ((RelayIdleSweeper)s!).Sweep(), this, Tick, Tick);
    }

    /// <summary>Relays watched right now (for tests and leak checks).</summary>
    public int Count => _relays.Count;

    public void Watch(SpliceRelay relay) => _relays.TryAdd(relay, 0);

    public void Forget(SpliceRelay relay) => _relays.TryRemove(relay, out _);

    internal void Sweep()
    {
        if (Interlocked.Exchange(ref _sweeping, 1) != 0) return; // the previous tick is still at it
        try
        {
            long now = _time.GetTimestamp();
            foreach (var relay in _relays.Keys)
                if (relay.IdleFor(now, _time) >= relay.IdleTimeout) relay.Stop(RelayEnd.IdleTimeout);
        }
        finally { Volatile.Write(ref _sweeping, 0); }
    }

    public void Dispose() => _timer.Dispose();
}
