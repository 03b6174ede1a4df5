using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// Pipeline step before session affinity: applies the runtime API's destination states (HAProxy's). A disabled
/// destination is removed from the candidates here, so that session affinity redistributes its sessions; a draining
/// one stays for session affinity to find, and <see cref="CircuitBreakerStep"/> removes it afterwards unless the
/// request was bound to it (HAProxy DRAIN: existing sessions finish, no new ones).
/// </summary>
internal sealed class AdminStateStep(DestinationRegistry pools)
{
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var proxy = context.ReverseProxyFeature();
        var clusterId = proxy.Cluster.Config.ClusterId;
        var available = proxy.AvailableDestinations;
        bool anyDisabled = false, anyDraining = false;
        for (int i = 0; i < available.Count; i++) // indexed: foreach over the interface would box an enumerator per request
        {
            var state = pools.Get(clusterId, available[i]).AdminState;
            anyDisabled |= state == DestinationAdminState.Disabled;
            anyDraining |= state == DestinationAdminState.Draining;
        }
        if (anyDisabled) proxy.AvailableDestinations = available = WithoutDisabled(clusterId, available);
        if (anyDraining) context.Features.Set(new CandidatesBeforeAffinity(available));
        return next(context);
    }

    // Apart from InvokeAsync: a lambda there capturing its locals would cost a closure on every request.
    private List<DestinationState> WithoutDisabled(string clusterId, IReadOnlyList<DestinationState> available)
        => available.Where(d => pools.Get(clusterId, d).AdminState != DestinationAdminState.Disabled).ToList();

    /// <summary>
    /// After session affinity: true when it bound the request to one destination (it replaces the candidate list by
    /// the affinitized destination; when the request has no affinity, or its destination is gone, the list stays).
    /// </summary>
    public static bool BoundByAffinity(HttpContext context, IReadOnlyList<DestinationState> available)
        => available.Count == 1 && context.Find<CandidatesBeforeAffinity>() is { } before && !ReferenceEquals(before.Candidates, available);

    private sealed record CandidatesBeforeAffinity(IReadOnlyList<DestinationState> Candidates);
}
