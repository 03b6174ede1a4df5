using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>Why a try never reached the destination: it is then safe to try another one, whatever the method.</summary>
internal enum TryRejection { None, QueueFull, QueueTimeout, BreakerOpen }

/// <summary>
/// Per-request pool state shared by the pool steps: the candidates before load balancing (so that a retry can pick
/// the next one), the destinations already tried, and how the current try went. A zero-copy connection keeps one and
/// <see cref="Restart"/>s it for each of its requests (<see cref="Transport.ZeroCopyResponse.Pool"/>).
/// </summary>
internal sealed class BalancingRequestFeature(string clusterId, ClusterState cluster, ClusterBalancingSettings settings,
    IReadOnlyList<DestinationState> primaries, IReadOnlyList<DestinationState> backups)
{
    public string ClusterId { get; private set; } = clusterId;
    public ClusterState Cluster { get; private set; } = cluster;
    public ClusterBalancingSettings Settings { get; private set; } = settings;
    public IReadOnlyList<DestinationState> Primaries { get; private set; } = primaries;
    public IReadOnlyList<DestinationState> Backups { get; private set; } = backups;
    private List<DestinationState>? _tried; // made by the first retry's bookkeeping: most requests have one try

    /// <summary>The same object for the next request: its candidates, nothing tried, no try yet.</summary>
    public BalancingRequestFeature Restart(string clusterId, ClusterState cluster, ClusterBalancingSettings settings,
        IReadOnlyList<DestinationState> primaries, IReadOnlyList<DestinationState> backups)
    {
        ClusterId = clusterId;
        Cluster = cluster;
        Settings = settings;
        Primaries = primaries;
        Backups = backups;
        _tried?.Clear();
        Current = null;
        Plan = null;
        Rejection = TryRejection.None;
        Tries = 0;
        return this;
    }

    /// <summary>Whether a try already went to <paramref name="destination"/> (the current one is not counted until marked).</summary>
    public bool HasTried(DestinationState destination) => _tried?.Contains(destination) == true;

    /// <summary>Records a finished try on <paramref name="destination"/> (once).</summary>
    public void MarkTried(DestinationState destination)
    {
        if (HasTried(destination)) return;
        (_tried ??= new List<DestinationState>(2)).Add(destination);
    }

    /// <summary>The cluster's plan when <see cref="PoolFastPath"/> took the request (its destinations' runtimes and settings at hand).</summary>
    public PoolPlan? Plan { get; set; }

    /// <summary>The destination of the current try, set when it got a connection slot.</summary>
    public DestinationState? Current { get; set; }
    public TryRejection Rejection { get; set; }
    public int Tries { get; set; }

    /// <summary>The candidates the current try is balanced over: primaries while there are any, else backups.</summary>
    public IReadOnlyList<DestinationState> Tier => Primaries.Count > 0 ? Primaries : Backups;

    /// <summary>
    /// Candidates neither tried nor being tried: untried primaries first, then (nginx-like) backups once every
    /// primary failed.
    /// </summary>
    public List<DestinationState> Untried(Func<DestinationState, bool> usable)
    {
        bool Fresh(DestinationState d) => !ReferenceEquals(d, Current) && !HasTried(d) && usable(d);
        var next = Primaries.Where(Fresh).ToList();
        if (next.Count == 0) next = Backups.Where(Fresh).ToList();
        return next;
    }
}
