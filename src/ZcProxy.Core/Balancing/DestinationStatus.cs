using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>One destination's pool state as shown by GET {Admin}/status.</summary>
internal sealed record DestinationStatus(bool Healthy, bool Backup, int Weight, double EffectiveWeight, int ActiveRequests, int MaxConnections,
    int QueueLength, long Requests, long Failures, string Breaker)
{
    public static DestinationStatus Describe(DestinationRegistry pools, string clusterId, DestinationState destination)
    {
        var runtime = pools.Get(clusterId, destination);
        var settings = destination.Model is { } m ? DestinationBalancingSettings.For(m.Config) : DestinationBalancingSettings.Default;
        var breaker = runtime.Breaker;
        return new DestinationStatus(
            Healthy: DestinationRegistry.IsHealthy(destination, runtime),
            Backup: settings.Backup,
            Weight: settings.Weight,
            EffectiveWeight: Math.Round(runtime.EffectiveWeight(settings), 3),
            ActiveRequests: runtime.ActiveRequests,
            MaxConnections: settings.MaxConnections,
            QueueLength: runtime.Slots.QueueLength,
            Requests: runtime.Requests,
            Failures: runtime.Failures,
            Breaker: breaker is null ? "off" : breaker.State switch
            {
                BreakerState.Open => "open",
                BreakerState.HalfOpen => "half-open", // break passed: the next try is the trial
                _ => "closed",
            });
    }
}
