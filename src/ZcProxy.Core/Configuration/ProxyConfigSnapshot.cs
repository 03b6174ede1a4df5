using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;

namespace ZcProxy.Core.Configuration;

/// <summary>An immutable routes + clusters revision handed to YARP; its change token fires when a newer one replaces it.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001",
    Justification = "YARP may still observe the change token of a replaced snapshot; a cancelled source without a timer holds nothing to release")]
internal sealed class ProxyConfigSnapshot : IProxyConfig
{
    private readonly CancellationTokenSource _replaced = new();

    public ProxyConfigSnapshot(IReadOnlyList<RouteConfig> routes, IReadOnlyList<ClusterConfig> clusters)
    {
        Routes = RateLimiting.RouteRateLimits.ForYarp(routes); // the policy name travels in Metadata (see RouteRateLimits)
        Clusters = clusters;
        ChangeToken = new CancellationChangeToken(_replaced.Token);
    }

    public string RevisionId { get; } = Guid.NewGuid().ToString("N");
    public IReadOnlyList<RouteConfig> Routes { get; }
    public IReadOnlyList<ClusterConfig> Clusters { get; }
    public IChangeToken ChangeToken { get; }

    public void SignalReplaced() => _replaced.Cancel();
}
