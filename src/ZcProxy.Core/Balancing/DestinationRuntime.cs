using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// The live state ZcProxy keeps for one destination of one cluster, beside YARP's <see cref="DestinationState"/>:
/// requests in flight and queued, failures, the circuit breaker, and when it last recovered (for slow start).
/// It survives reloads as long as the cluster and destination ids stay.
/// </summary>
internal sealed class DestinationRuntime
{
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private DestinationBreaker? _breaker;
    private bool _healthy = true;
    private DateTimeOffset? _recoveredAt;
    private int _active;
    private long _failures;
    private long _requests;

    private readonly Action<DestinationRuntime, bool>? _breakerChanged;

    public DestinationRuntime(string clusterId, string destinationId, TimeProvider time, Action<DestinationRuntime, bool>? breakerChanged = null)
    {
        _breakerChanged = breakerChanged;
        ClusterId = clusterId;
        DestinationId = destinationId;
        _time = time;
        Slots = new ConnectionSlots(time);
    }

    public string ClusterId { get; }
    public string DestinationId { get; }
    public ConnectionSlots Slots { get; }
    public DestinationBalancingSettings Settings { get; private set; } = DestinationBalancingSettings.Default;
    public int ActiveRequests => Volatile.Read(ref _active);
    public long Failures => Interlocked.Read(ref _failures);
    public long Requests => Interlocked.Read(ref _requests);
    public bool Healthy { get { lock (_lock) return _healthy; } }
    public DestinationBreaker? Breaker => Volatile.Read(ref _breaker);

    /// <summary>True while its breaker keeps the destination out of the pool.</summary>
    public bool IsBroken => Breaker?.IsBlocking == true;

    public void BeginRequest() { Interlocked.Increment(ref _active); Interlocked.Increment(ref _requests); }
    public void EndRequest() => Interlocked.Decrement(ref _active);
    public void RecordFailure() => Interlocked.Increment(ref _failures);

    /// <summary>Records the destination's health as seen now; a healthy-again destination starts its slow-start ramp.</summary>
    public void ObserveHealth(bool healthy, DestinationBalancingSettings settings)
    {
        Settings = settings;
        if (healthy == Volatile.Read(ref _healthy)) return; // the common case, every request: no lock
        lock (_lock)
        {
            if (healthy && !_healthy) _recoveredAt = _time.GetUtcNow();
            Volatile.Write(ref _healthy, healthy);
        }
    }

    /// <summary>Weight after slow start: the configured weight, scaled down while the destination ramps up.</summary>
    public double EffectiveWeight(DestinationBalancingSettings settings)
    {
        DateTimeOffset? since;
        lock (_lock) since = _recoveredAt;
        if (since is null || settings.SlowStart <= TimeSpan.Zero) return settings.Weight;
        return settings.Weight * SlowStartRamp.Fraction(_time.GetUtcNow() - since.Value, settings.SlowStart);
    }

    public bool InSlowStart(DestinationBalancingSettings settings) => EffectiveWeight(settings) < settings.Weight;

    /// <summary>
    /// The breaker for the cluster's current settings and size (rebuilt when a reload changes them); null when off.
    /// </summary>
    /// <param name="destinations">How many destinations the cluster has (see <see cref="ClusterBalancingSettings.BreakerMaxFails"/>).</param>
    public DestinationBreaker? BreakerFor(ClusterBalancingSettings cluster, int destinations)
    {
        int maxFails = cluster.BreakerMaxFails(destinations);
        if (maxFails <= 0) { Volatile.Write(ref _breaker, null); return null; }
        var current = Volatile.Read(ref _breaker);
        if (current is not null && current.MaxFails == maxFails && current.FailRatio == cluster.FailRatio && current.FailTimeout == cluster.FailTimeout) return current;
        var created = new DestinationBreaker(maxFails, cluster.FailRatio, cluster.FailTimeout, _time);
        if (Interlocked.CompareExchange(ref _breaker, created, current) == current && _breakerChanged is { } changed)
        {
            created.Opened += () => changed(this, true);
            created.Closed += () => changed(this, false);
        }
        return Volatile.Read(ref _breaker);
    }
}
