using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// Pipeline step before load balancing (nginx <c>backup</c>): backup destinations are candidates only while no
/// primary is available. Records the candidates for the later steps (retries, connection limits) and logs, at
/// most once a second per cluster, when a cluster has no destination left.
/// </summary>
internal sealed class BackupDestinationsStep(DestinationRegistry pools, ILogger<BackupDestinationsStep> logger)
{
    private readonly ConcurrentDictionary<string, bool> _onBackups = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _lastNoDestinationLog = new(StringComparer.Ordinal);
    private int _clustersOnBackups;

    /// <summary>
    /// Some cluster is served by its backups now: <see cref="PoolFastPath"/> leaves every request to this step then, so
    /// that the cluster's way back to its primaries is logged here.
    /// </summary>
    public bool AnyClusterOnBackups => Volatile.Read(ref _clustersOnBackups) > 0;

    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var proxy = context.ReverseProxyFeature();
        var config = proxy.Cluster.Config;
        var available = proxy.AvailableDestinations;
        // Without backups (the usual case) the candidates are the primaries as they are: no list is made per request.
        IReadOnlyList<DestinationState> primaryList = available, backupList = Array.Empty<DestinationState>();
        if (AnyBackup(available)) (primaryList, backupList) = Split(available);
        StartPool(context, proxy, ClusterBalancingSettings.For(config), primaryList, backupList);

        bool useBackups = primaryList.Count == 0 && backupList.Count > 0;
        if (_onBackups.TryGetValue(config.ClusterId, out var was) ? was != useBackups : useBackups)
            Switch(config.ClusterId, was, useBackups, primaryList.Count);
        if (useBackups) proxy.AvailableDestinations = backupList;
        else if (!ReferenceEquals(primaryList, available)) proxy.AvailableDestinations = primaryList;
        else if (available.Count == 0) LogNoDestination(proxy.Cluster.Config.ClusterId, proxy.AllDestinations);
        return next(context);
    }

    /// <summary>The request's pool state (<see cref="BalancingRequestFeature"/>) over these candidates, for the retry step.</summary>
    internal static BalancingRequestFeature StartPool(HttpContext context, IReverseProxyFeature proxy, ClusterBalancingSettings settings,
        IReadOnlyList<DestinationState> primaries, IReadOnlyList<DestinationState> backups)
    {
        var clusterId = proxy.Cluster.Config.ClusterId;
        // A zero-copy connection keeps one for all its requests (HTTP/1.x runs them one at a time).
        var perConnection = context.Find<ZeroCopyResponse>();
        var pool = perConnection?.Pool?.Restart(clusterId, proxy.Route.Cluster!, settings, primaries, backups)
            ?? new BalancingRequestFeature(clusterId, proxy.Route.Cluster!, settings, primaries, backups);
        if (perConnection is not null) perConnection.Pool = pool;
        context.Put(pool);
        return pool;
    }

    /// <summary>The cluster went to its backups or back: logged (and counted) once, by the request that saw it first.</summary>
    private void Switch(string clusterId, bool was, bool useBackups, int primaries)
    {
        bool switched = _onBackups.TryGetValue(clusterId, out var current)
            ? current == was && _onBackups.TryUpdate(clusterId, useBackups, was)
            : _onBackups.TryAdd(clusterId, useBackups);
        if (!switched) return;
        Interlocked.Add(ref _clustersOnBackups, useBackups ? 1 : -1);
        if (useBackups) BalancingLog.UsingBackups(logger, clusterId);
        else if (primaries > 0) BalancingLog.BackupsReleased(logger, clusterId);
    }

    private static bool IsBackup(DestinationState d) => d.Model is { } m && DestinationBalancingSettings.For(m.Config).Backup;

    private static bool AnyBackup(IReadOnlyList<DestinationState> available)
    {
        for (int i = 0; i < available.Count; i++) // indexed: foreach over the interface would box an enumerator per request
            if (IsBackup(available[i])) return true;
        return false;
    }

    private static (List<DestinationState> Primaries, List<DestinationState> Backups) Split(IReadOnlyList<DestinationState> available)
    {
        List<DestinationState> primaries = [], backups = [];
        for (int i = 0; i < available.Count; i++) (IsBackup(available[i]) ? backups : primaries).Add(available[i]);
        return (primaries, backups);
    }

    private void LogNoDestination(string clusterId, IReadOnlyList<DestinationState> all)
    {
        long now = pools.Time.GetTimestamp();
        long last = _lastNoDestinationLog.GetValueOrDefault(clusterId);
        if (last != 0 && pools.Time.GetElapsedTime(last, now) < TimeSpan.FromSeconds(1)) return;
        _lastNoDestinationLog[clusterId] = now;
        var reasons = string.Join(", ", all.Select(d => $"{d.DestinationId}: {Reason(clusterId, d)}"));
        BalancingLog.NoDestination(logger, clusterId, all.Count, all.Count == 0 ? "none" : reasons);
    }

    private string Reason(string clusterId, DestinationState d)
    {
        var runtime = pools.Get(clusterId, d);
        if (runtime.AdminState != DestinationAdminState.Enabled) return DestinationAdminStates.Label(runtime.AdminState) + " by an operator";
        if (runtime.IsBroken) return "circuit breaker open";
        if (d.Health.Active == DestinationHealth.Unhealthy) return "active health check failed";
        if (d.Health.Passive == DestinationHealth.Unhealthy) return "passive health check failed";
        return "unavailable";
    }
}
