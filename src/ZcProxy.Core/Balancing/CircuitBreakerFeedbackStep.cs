using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// The last pool step before the forwarder: runs the try through the destination's breaker and tells it how the
/// try went. A failure is a forwarding error before the response (connect, send, timeout, bad head: what either
/// forwarder reports through <see cref="IForwarderErrorFeature"/>) or a FailOn status. A breaker that refuses the
/// try (half-open with its trial in flight) ends it like a full queue does.
/// </summary>
internal sealed class CircuitBreakerFeedbackStep(DestinationRegistry pools)
{
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var pool = context.Features.Get<BalancingRequestFeature>();
        if (pool?.Current is not { } destination || pool.Rejection != TryRejection.None) { await next(context); return; }
        var runtime = pools.Get(pool.ClusterId, destination);
        var breaker = runtime.BreakerFor(pool.Settings, pool.Cluster.Destinations.Count);
        if (breaker is null)
        {
            await next(context);
            if (IsFailure(context, pool.Settings)) runtime.RecordFailure();
            return;
        }

        bool ran = await breaker.TryExecuteAsync(static async s =>
        {
            await s.next(s.context);
            bool failed = IsFailure(s.context, s.pool.Settings);
            if (failed) s.runtime.RecordFailure();
            return failed;
        }, (next, context, pool, runtime));
        if (!ran)
        {
            pool.Rejection = TryRejection.BreakerOpen;
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        }
    }

    public static bool IsFailure(HttpContext context, ClusterBalancingSettings settings)
    {
        if (context.RequestAborted.IsCancellationRequested) return false; // the client left: not the destination's fault
        if (context.Features.Get<IForwarderErrorFeature>() is { } error)
            return IsUpstreamFailure(error.Error);
        return settings.FailOnStatuses.Contains(context.Response.StatusCode);
    }

    /// <summary>Forwarding errors that are the destination's doing (not the client's, not ours).</summary>
    public static bool IsUpstreamFailure(ForwarderError error) => error is ForwarderError.Request or ForwarderError.RequestTimedOut
        or ForwarderError.ResponseHeaders or ForwarderError.ResponseBodyDestination or ForwarderError.RequestBodyDestination;
}
