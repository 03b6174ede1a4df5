using System.Runtime.InteropServices;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Transport.Loops;

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
    private readonly TryCounts[] _counts = new TryCounts[LoopStripe.ArrayLength]; // per loop: see TryCounts
    private long _failures;

    private readonly Action<DestinationRuntime, bool>? _breakerChanged;
    private int _adminState; // DestinationAdminState
    private int _weightOverride; // 0: the configured weight

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
    /// <summary>Tries in flight, summed over the loops' stripes (each stripe counts the tries begun on it: never negative).</summary>
    public int ActiveRequests
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < _counts.Length; i++) sum += Volatile.Read(ref _counts[i].Active);
            return (int)sum;
        }
    }

    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Tries begun.</summary>
    public long Requests
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < _counts.Length; i++) sum += Interlocked.Read(ref _counts[i].Requests);
            return sum;
        }
    }
    public bool Healthy { get { lock (_lock) return _healthy; } }
    public DestinationBreaker? Breaker => Volatile.Read(ref _breaker);

    /// <summary>True while its breaker keeps the destination out of the pool.</summary>
    public bool IsBroken => Breaker?.IsBlocking == true;

    /// <summary>Set by the runtime API (drain, disable, enable); kept across reloads while the destination stays.</summary>
    public DestinationAdminState AdminState => (DestinationAdminState)Volatile.Read(ref _adminState);

    /// <summary>Sets the operator's state; a destination put back in rotation starts its slow-start ramp (as HAProxy's leaving MAINT).</summary>
    public void SetAdminState(DestinationAdminState state)
    {
        lock (_lock)
        {
            var was = (DestinationAdminState)_adminState;
            if (state == DestinationAdminState.Enabled && was != DestinationAdminState.Enabled) _recoveredAt = _time.GetUtcNow();
            Volatile.Write(ref _adminState, (int)state);
        }
    }

    /// <summary>The weight set by the runtime API, replacing the configured one; null when none was set.</summary>
    public int? WeightOverride
    {
        get => Volatile.Read(ref _weightOverride) is var w and > 0 ? w : null;
        set => Volatile.Write(ref _weightOverride, value ?? 0);
    }

    /// <summary>The weight in force: the runtime API's, else the configured one.</summary>
    public int Weight(DestinationBalancingSettings settings) => WeightOverride ?? settings.Weight;

    /// <summary>Takes no new requests: its breaker is open, or an operator drained or disabled it.</summary>
    public bool IsOutOfRotation => IsBroken || AdminState != DestinationAdminState.Enabled;

    /// <summary>Seconds of every finished try added up (with <see cref="Completed"/>, the status page's latency per second).</summary>
    public double LatencySeconds
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < _counts.Length; i++) sum += Interlocked.Read(ref _counts[i].LatencyMicroseconds);
            return sum / 1e6;
        }
    }

    /// <summary>Tries that finished.</summary>
    public long Completed
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < _counts.Length; i++) sum += Interlocked.Read(ref _counts[i].Completed);
            return sum;
        }
    }

    /// <summary>A try begins: counted in flight on the current thread's stripe, returned for <see cref="EndRequest"/>.</summary>
    public int BeginRequest()
    {
        int stripe = LoopStripe.Current;
        ref var counts = ref _counts[stripe];
        Interlocked.Increment(ref counts.Active);
        Interlocked.Increment(ref counts.Requests);
        return stripe;
    }

    /// <summary>Ends a try that took <paramref name="elapsed"/>, begun on <paramref name="stripe"/> (whichever thread ends it).</summary>
    public void EndRequest(TimeSpan elapsed, int stripe)
    {
        // Finished and latency on the ending thread's stripe; in flight on the one it began on, so no stripe goes negative.
        ref var counts = ref _counts[LoopStripe.Current];
        Interlocked.Add(ref counts.LatencyMicroseconds, (long)(elapsed.Ticks / 10));
        Interlocked.Increment(ref counts.Completed);
        Interlocked.Decrement(ref _counts[stripe].Active);
    }
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
        int weight = Weight(settings);
        if (since is null || settings.SlowStart <= TimeSpan.Zero) return weight;
        return weight * SlowStartRamp.Fraction(_time.GetUtcNow() - since.Value, settings.SlowStart);
    }

    public bool InSlowStart(DestinationBalancingSettings settings) => EffectiveWeight(settings) < Weight(settings);

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
        if (Interlocked.CompareExchange(ref _breaker, created, current) == current) ReportChanges(created);
        return Volatile.Read(ref _breaker);
    }

    // Apart from BreakerFor (called per request): lambdas there capturing its locals would cost a closure per call.
    private void ReportChanges(DestinationBreaker breaker)
    {
        if (_breakerChanged is not { } changed) return;
        breaker.Opened += () => changed(this, true);
        breaker.Closed += () => changed(this, false);
    }
}

/// <summary>
/// One loop's share of a destination's try counts, alone on its cache lines: both loops begin and end tries on the same
/// destination, and one shared set of counters was five cross-core line transfers per proxied request on a 2-core VM.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct TryCounts
{
    [FieldOffset(64)] public long Active;
    [FieldOffset(72)] public long Requests;
    [FieldOffset(80)] public long Completed;
    [FieldOffset(88)] public long LatencyMicroseconds;
}
