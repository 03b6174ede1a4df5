using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// Pipeline step around each try (inside retries): takes one of the picked destination's MaxConnections slots.
/// When it is full, another candidate with a free slot is used instead; when none has one, the request waits in the
/// destination's bounded queue for QueueTimeout; a full queue or the timeout ends the try with 503 + Retry-After
/// (retried on another destination when retries allow). Also keeps the in-flight count the policies balance on, and
/// runs the try through the destination's breaker (<see cref="CircuitBreakerFeedback"/>) within the same await.
/// </summary>
internal sealed class ConnectionLimitStep(DestinationRegistry pools)
{
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var proxy = context.ReverseProxyFeature();
        var pool = context.Find<BalancingRequestFeature>();
        if (pool is null || proxy.AvailableDestinations.Count == 0) { await next(context); return; }

        var destination = proxy.AvailableDestinations[0];
        var runtime = pools.Get(pool.ClusterId, destination);
        int limit = Limit(destination);
        if (!runtime.Slots.TryEnter(limit))
        {
            if (FreeAlternative(pool, destination) is { } other && pools.Get(pool.ClusterId, other).Slots.TryEnter(Limit(other)))
            {
                destination = other;
                runtime = pools.Get(pool.ClusterId, other);
                proxy.AvailableDestinations = other;
            }
            else
            {
                SlotResult result;
                try
                {
                    result = await runtime.Slots.EnterAsync(limit, pool.Settings.MaxQueue, pool.Settings.QueueTimeout, context.RequestAborted);
                }
                catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
                {
                    context.Response.StatusCode = 499; // nginx's "client closed request": it left while queued
                    return;
                }
                if (result != SlotResult.Entered)
                {
                    pool.Current = destination;
                    pool.Rejection = result == SlotResult.QueueFull ? TryRejection.QueueFull : TryRejection.QueueTimeout;
                    context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                    return;
                }
            }
        }

        pool.Current = destination;
        pool.Rejection = TryRejection.None;
        runtime.BeginRequest();
        long start = pools.Time.GetTimestamp();
        try
        {
            if (!CircuitBreakerFeedback.TryBegin(context, pool, runtime, out var breaker, out bool trial)) return;
            try
            {
                await next(context);
            }
            catch
            {
                breaker?.Abandon(trial);
                throw;
            }
            CircuitBreakerFeedback.End(context, pool, runtime, breaker, trial);
        }
        finally
        {
            runtime.EndRequest(pools.Time.GetElapsedTime(start));
            runtime.Slots.Exit();
        }
    }

    private static int Limit(DestinationState d) => d.Model is { } m ? DestinationBalancingSettings.For(m.Config).MaxConnections : 0;

    /// <summary>The least loaded (per weight) untried candidate of the same tier that has a free slot now.</summary>
    private DestinationState? FreeAlternative(BalancingRequestFeature pool, DestinationState full)
    {
        DestinationState? best = null;
        double bestLoad = double.MaxValue;
        foreach (var d in pool.Tier)
        {
            if (ReferenceEquals(d, full) || pool.HasTried(d)) continue;
            var runtime = pools.Get(pool.ClusterId, d);
            if (runtime.IsOutOfRotation || !runtime.Slots.HasFreeSlot(Limit(d))) continue;
            double load = runtime.ActiveRequests / pools.EffectiveWeight(pool.ClusterId, d);
            if (load < bestLoad) { best = d; bestLoad = load; }
        }
        return best;
    }
}
