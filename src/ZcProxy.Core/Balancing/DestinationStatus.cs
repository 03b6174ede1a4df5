using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// One destination's pool state as shown by GET {Admin}/status, the status page and the runtime API's answers.
/// <c>State</c> is the operator's (enabled, draining, disabled); <c>Weight</c> the one in force (the runtime API's, else
/// <c>ConfiguredWeight</c>).
/// </summary>
internal sealed record DestinationStatus(bool Healthy, string State, bool Backup, int Weight, int ConfiguredWeight, double EffectiveWeight,
    int ActiveRequests, int MaxConnections, int QueueLength, long Requests, long Failures, string Breaker, long Completed, double LatencySeconds)
{
    public static DestinationStatus Describe(DestinationRegistry pools, string clusterId, DestinationState destination)
    {
        var runtime = pools.Get(clusterId, destination);
        var settings = destination.Model is { } m ? DestinationBalancingSettings.For(m.Config) : DestinationBalancingSettings.Default;
        var breaker = runtime.Breaker;
        return new DestinationStatus(
            Healthy: DestinationRegistry.IsHealthy(destination, runtime),
            State: DestinationAdminStates.Label(runtime.AdminState),
            Backup: settings.Backup,
            Weight: runtime.Weight(settings),
            ConfiguredWeight: settings.Weight,
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
            },
            Completed: runtime.Completed,
            LatencySeconds: Math.Round(runtime.LatencySeconds, 6));
    }
}
