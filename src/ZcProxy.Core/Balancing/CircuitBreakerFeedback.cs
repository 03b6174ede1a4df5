using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// Runs a try through its destination's breaker and tells the destination how the try went. A failure is a forwarding
/// error before the response (connect, send, timeout, bad head: what either forwarder reports through
/// <see cref="IForwarderErrorFeature"/>) or a FailOn status. A breaker that refuses the try (half-open with its trial in
/// flight) ends it like a full queue does. Called by <see cref="ConnectionLimits"/> around the retry step's await of the try:
/// a step of its own would be one more async frame (and box) per proxied request, three with a breaker.
/// </summary>
internal static class CircuitBreakerFeedback
{
    /// <summary>False when the breaker refused the try: then it is rejected (503, retried elsewhere when retries allow).</summary>
    public static bool TryBegin(HttpContext context, BalancingRequestFeature pool, DestinationRuntime runtime, out DestinationBreaker? breaker, out bool trial)
    {
        trial = false;
        breaker = runtime.BreakerFor(pool.Settings, pool.Cluster.Destinations.Count);
        if (breaker is null || breaker.TryEnter(out trial)) return true;
        pool.Rejection = TryRejection.BreakerOpen;
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        return false;
    }

    /// <summary>The try ended (it did not throw): counts a failure, and gives the breaker its outcome.</summary>
    public static void End(HttpContext context, BalancingRequestFeature pool, DestinationRuntime runtime, DestinationBreaker? breaker, bool trial)
    {
        bool failed = IsFailure(context, pool.Settings);
        if (failed) runtime.RecordFailure();
        breaker?.Record(failed, trial);
    }

    private static bool IsFailure(HttpContext context, ClusterBalancingSettings settings)
    {
        if (context.RequestAborted.IsCancellationRequested) return false; // the client left: not the destination's fault
        if (context.Find<IForwarderErrorFeature>() is { } error)
            return IsUpstreamFailure(error.Error);
        return settings.FailOnStatuses.Contains(context.Response.StatusCode);
    }

    /// <summary>Forwarding errors that are the destination's doing (not the client's, not ours).</summary>
    private static bool IsUpstreamFailure(ForwarderError error) => error is ForwarderError.Request or ForwarderError.RequestTimedOut
        or ForwarderError.ResponseHeaders or ForwarderError.ResponseBodyDestination or ForwarderError.RequestBodyDestination;
}
