using Yarp.ReverseProxy.Configuration;

namespace ZcProxy.Core.Discovery;

/// <summary>A destination a registry announced for a cluster of the config files; <paramref name="Origin"/> names where (e.g. the etcd key).</summary>
internal sealed record DiscoveredDestination(string ClusterId, string DestinationId, DestinationConfig Config, string Origin);

/// <summary>A registry entry that is not served, and why (logged once, counted in /status and metrics).</summary>
internal sealed record DiscoveryRejection(string Origin, string Reason)
{
    public override string ToString() => $"{Origin}: {Reason}";
}
