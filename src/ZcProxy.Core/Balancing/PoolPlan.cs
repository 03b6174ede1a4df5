using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// What the pool steps look up about one cluster on every request, read once per configuration and destination set:
/// its settings, each destination's settings and <see cref="DestinationRuntime"/> (without the registry's lookup by
/// two ids), and whether the cluster configures a pool feature the fast path leaves to the steps (<see cref="Plain"/>).
/// </summary>
internal sealed class PoolPlan
{
    private readonly ClusterConfig _config;
    private readonly IReadOnlyList<DestinationState> _all;
    private readonly DestinationModel?[] _models;
    private readonly int _generation;

    private PoolPlan(IReverseProxyFeature proxy, DestinationRegistry pools)
    {
        _config = proxy.Cluster.Config;
        _all = proxy.AllDestinations;
        _generation = pools.Generation; // before the runtimes: a runtime dropped meanwhile makes this plan stale at once
        int count = _all.Count;
        _models = new DestinationModel?[count];
        Runtimes = new DestinationRuntime[count];
        DestinationSettings = new DestinationBalancingSettings[count];
        bool anyBackup = false;
        for (int i = 0; i < count; i++)
        {
            var d = _all[i];
            _models[i] = d.Model;
            Runtimes[i] = pools.Get(_config.ClusterId, d);
            DestinationSettings[i] = d.Model is { } m ? DestinationBalancingSettings.For(m.Config) : DestinationBalancingSettings.Default;
            anyBackup |= DestinationSettings[i].Backup;
        }
        Settings = ClusterBalancingSettings.For(_config);
        Plain = !anyBackup && _config.SessionAffinity?.Enabled != true && !BalancingPipelineExtensions.PassiveHealthEnabled(proxy.Cluster);
    }

    /// <summary>
    /// No backups, no session affinity, no passive health checks: with every destination in rotation, admin states,
    /// breakers and backups leave the candidates as they are and load balancing is the policy's pick alone.
    /// </summary>
    public bool Plain { get; }

    public ClusterBalancingSettings Settings { get; }

    /// <summary>Parallel to the feature's AllDestinations.</summary>
    public DestinationRuntime[] Runtimes { get; }

    /// <summary>Parallel to the feature's AllDestinations.</summary>
    public DestinationBalancingSettings[] DestinationSettings { get; }

    /// <summary>The index of <paramref name="destination"/> in the planned destinations, or -1.</summary>
    public int IndexOf(DestinationState destination)
    {
        for (int i = 0; i < _all.Count; i++)
            if (ReferenceEquals(_all[i], destination)) return i;
        return -1;
    }

    public static PoolPlan Build(IReverseProxyFeature proxy, DestinationRegistry pools) => new(proxy, pools);

    /// <summary>
    /// Still the request's cluster as it was planned: same configuration, same destination list and models, no
    /// destination state dropped since (a reload, discovery or health change brings new objects).
    /// </summary>
    public bool IsCurrentFor(IReverseProxyFeature proxy, DestinationRegistry pools)
    {
        if (!ReferenceEquals(_config, proxy.Cluster.Config) || !ReferenceEquals(_all, proxy.AllDestinations) || _generation != pools.Generation) return false;
        for (int i = 0; i < _models.Length; i++)
            if (!ReferenceEquals(_models[i], _all[i].Model)) return false;
        return true;
    }
}
