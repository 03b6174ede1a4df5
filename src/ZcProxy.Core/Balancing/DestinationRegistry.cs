using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// All destinations' <see cref="DestinationRuntime"/>, keyed by cluster and destination id. The load-balancing
/// policies, the pool steps, the admin status and the metrics all read the same objects.
/// </summary>
internal sealed class DestinationRegistry
{
    private readonly ConcurrentDictionary<(string Cluster, string Destination), DestinationRuntime> _destinations = new();

    private readonly ILogger _logger;
    private int _generation;

    public DestinationRegistry(TimeProvider time, ProxyMetrics metrics, ILogger<DestinationRegistry> logger)
    {
        Time = time;
        _logger = logger;
        RejectedTotal = metrics.Counter("zcproxy_upstream_rejected_total", "Requests answered 503 because every candidate destination was full or broken.");
        DestinationMetrics.Register(metrics, this);
    }

    public TimeProvider Time { get; }
    public Counter RejectedTotal { get; }

    public DestinationRuntime Get(string clusterId, string destinationId)
        => _destinations.GetOrAdd((clusterId, destinationId), static (k, self) => new DestinationRuntime(k.Cluster, k.Destination, self.Time, self.OnBreakerChanged), this);

    private void OnBreakerChanged(DestinationRuntime runtime, bool opened)
    {
        if (opened) BalancingLog.BreakerOpened(_logger, runtime.ClusterId, runtime.DestinationId, runtime.Breaker?.MaxFails ?? 0);
        else BalancingLog.BreakerClosed(_logger, runtime.ClusterId, runtime.DestinationId);
    }

    public DestinationRuntime Get(string clusterId, DestinationState destination) => Get(clusterId, destination.DestinationId);

    public IEnumerable<DestinationRuntime> All => _destinations.Values;

    /// <summary>
    /// Changes whenever <see cref="RetainOnly"/> dropped state: a <see cref="PoolPlan"/> holding runtimes from before
    /// may hold one that was dropped (and would be made anew by <see cref="Get(string, string)"/>).
    /// </summary>
    public int Generation => Volatile.Read(ref _generation);

    /// <summary>Drops the state of destinations not in <paramref name="live"/> (ids compared case-insensitively, as YARP does).</summary>
    public void RetainOnly(IEnumerable<(string Cluster, string Destination)> live)
    {
        var keep = live.Select(k => (k.Cluster.ToUpperInvariant(), k.Destination.ToUpperInvariant())).ToHashSet();
        foreach (var key in _destinations.Keys)
            if (!keep.Contains((key.Cluster.ToUpperInvariant(), key.Destination.ToUpperInvariant())))
                if (_destinations.TryRemove(key, out _)) Interlocked.Increment(ref _generation);
    }

    /// <summary>Healthy as far as YARP's active and passive checks and our breaker are concerned.</summary>
    public static bool IsHealthy(DestinationState destination, DestinationRuntime runtime)
        => destination.Health.Active != DestinationHealth.Unhealthy && destination.Health.Passive != DestinationHealth.Unhealthy && !runtime.IsBroken;

    /// <summary>The effective (slow-start adjusted) weight of a live destination.</summary>
    public double EffectiveWeight(string clusterId, DestinationState destination)
    {
        var settings = destination.Model is { } model ? DestinationBalancingSettings.For(model.Config) : DestinationBalancingSettings.Default;
        return Get(clusterId, destination).EffectiveWeight(settings);
    }
}
