using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Output;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// The one async frame of a proxied request around its upstream tries: upstream timing (<see cref="UpstreamTimingStep"/>),
/// then nginx's <c>proxy_next_upstream</c> around each try, and per try the destination's connection slot and breaker
/// (<see cref="ConnectionLimits"/>) around the forwarder. One frame instead of one per concern: each frame the upstream
/// read suspends is a heap box per request.
/// When a try fails before any response byte reached the client (a forwarding error or timeout reported through
/// <see cref="IForwarderErrorFeature"/>, a RetryOn status held back by <see cref="ResponseHeadGate"/>, or a full
/// queue / open breaker), the request goes to the next untried destination, picked by the cluster's policy. Bounded by
/// Retries (default: every destination once) and RetryTimeout. Tries that never reached a destination (connect refused
/// or timed out, nothing of the request accepted, queue, breaker) are repeated for any method: the request body was
/// not read. Tries that failed after the request was sent are repeated only for idempotent methods unless
/// RetryNonIdempotent, and with a request body only when it was buffered within RetryBodyLimit.
/// It also answers a request whose last try was refused locally with 503 and Retry-After.
/// </summary>
internal sealed class RetryStep(DestinationRegistry pools, RetryMetrics retries, IEnumerable<ILoadBalancingPolicy> policies, ErrorPages pages,
    ConnectionLimits limits, UpstreamTimingStep timing, ILogger<RetryStep> logger)
{
    private readonly Dictionary<string, ILoadBalancingPolicy> _policies = policies
        .GroupBy(p => p.Name, StringComparer.OrdinalIgnoreCase).ToDictionary(g => g.Key, g => g.Last(), StringComparer.OrdinalIgnoreCase);

    /// <param name="forward">One try: the forwarder (which declines to YARP's where it does not qualify).</param>
    /// <remarks>
    /// The pipeline wants a Task, and a Task-returning async frame is a box of ~280 B per request that the upstream read
    /// suspends (its state: the request's settings, the gate, the try's slot and three awaiters). The frame is a pooled
    /// one instead, and only a request that suspends pays for the small Task that stands for it.
    /// </remarks>
    public Task InvokeAsync(HttpContext context, Func<HttpContext, ValueTask> forward)
    {
        var tries = TriesAsync(context, forward);
        if (!tries.IsCompletedSuccessfully) return tries.AsTask();
        tries.GetAwaiter().GetResult(); // gives a box back to its pool
        return Task.CompletedTask;
    }

    [AsyncMethodBuilder(typeof(FramePoolBuilder))]
    private async ValueTask TriesAsync(HttpContext context, Func<HttpContext, ValueTask> forward)
    {
        var timer = timing.Start(context);
        var pool = context.Find<BalancingRequestFeature>();
        if (pool is null)
        {
            await forward(context);
            await timing.FinishAsync(context, timer);
            return;
        }
        var settings = pool.Settings;
        long start = pools.Time.GetTimestamp();
        bool methodAllowed = settings.RetryNonIdempotent || HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method)
            || HttpMethods.IsOptions(context.Request.Method) || HttpMethods.IsPut(context.Request.Method)
            || HttpMethods.IsDelete(context.Request.Method) || HttpMethods.IsTrace(context.Request.Method);
        // Only a request that may be repeated pays for buffering its body; tries refused locally never read it.
        bool bodyReplayable = settings.Retries > 0 && methodAllowed && PrepareBody(context, settings);

        ResponseHeadGate? gate = null;
        var originalBody = context.Find<IHttpResponseBodyFeature>();
        if (settings.RetryOnStatuses.Count > 0 && originalBody is not null && bodyReplayable)
        {
            gate = Gate(context, pool, originalBody, start);
            context.Features.Set<IHttpResponseBodyFeature>(gate);
        }
        try
        {
            while (true)
            {
                pool.Tries++;
                pool.Rejection = TryRejection.None;
                // One try inside its slot and breaker, awaited here rather than in an async method of its own.
                var slot = await limits.EnterAsync(context, pool); // completes at once unless the request queues
                bool completed = false;
                try
                {
                    if (slot.Forward) await forward(context);
                    completed = true;
                }
                finally
                {
                    limits.Exit(context, pool, slot, completed);
                }

                var reason = WhyRetry(context, pool, gate, bodyReplayable);
                // A response the gate held back was dropped on the promise of another try: keep it even if a limit
                // has been reached since.
                bool heldBack = gate?.Discarded == true;
                if (reason is null || context.Response.HasStarted || (!heldBack && !CanTryAgain(context, pool, start))) break;
                if (pool.Current is { } tried) pool.MarkTried(tried); // only a request tried again pays for the list
                var nextDestination = PickNext(context, pool);
                if (nextDestination is null)
                {
                    if (heldBack) await WriteHeldBackFallbackAsync(context, pool, originalBody!);
                    break;
                }

                string why = Describe(reason.Value, context);
                BalancingLog.Retrying(logger, context.Request.Method, context.Request.Path.Value ?? "/", pool.Tries, pool.ClusterId,
                    pool.Current?.DestinationId ?? "-", why, nextDestination.DestinationId);
                retries[reason.Value].Increment();
                context.Features.Set<IForwarderErrorFeature>(null);
                context.Response.Clear();
                gate?.Reset();
                if (context.Request.Body.CanSeek) context.Request.Body.Position = 0;
                context.ReverseProxyFeature().AvailableDestinations = nextDestination;
                pool.Current = null;
            }
        }
        finally
        {
            if (gate is not null) context.Features.Set(originalBody);
        }

        if (pool.Rejection != TryRejection.None && !context.Response.HasStarted)
            await WriteRejectionAsync(context, pool);
        await timing.FinishAsync(context, timer);
    }

    // Methods, and the gate's lambda made only where there is a gate: local functions capturing these would cost a closure per request.
    private bool CanTryAgain(HttpContext context, BalancingRequestFeature pool, long start) => pool.Tries <= pool.Settings.Retries // Tries counts the first one; Retries may be int.MaxValue
        && (pool.Settings.RetryTimeout <= TimeSpan.Zero || pools.Time.GetElapsedTime(start) < pool.Settings.RetryTimeout)
        && !context.RequestAborted.IsCancellationRequested;

    private ResponseHeadGate Gate(HttpContext context, BalancingRequestFeature pool, IHttpResponseBodyFeature originalBody, long start)
        => new(originalBody, context, status => pool.Settings.RetryOnStatuses.Contains(status) && CanTryAgain(context, pool, start)
            && pool.Untried(d => Usable(pool, d)).Count > 0);

    /// <summary>Why the last try may be repeated elsewhere, or null.</summary>
    /// <param name="requestReplayable">The method may be repeated once the destination saw the request, and its body can be.</param>
    private static RetryReason? WhyRetry(HttpContext context, BalancingRequestFeature pool, ResponseHeadGate? gate, bool requestReplayable)
    {
        if (pool.Rejection != TryRejection.None) return pool.Rejection == TryRejection.BreakerOpen ? RetryReason.Breaker : RetryReason.Queue;
        var settings = pool.Settings;
        if (context.Find<IForwarderErrorFeature>() is { } error)
        {
            return TryFailures.Classify(error) switch
            {
                // The destination never saw the request and its body was not read: any method may go elsewhere.
                TryFailure.NotConnected when settings.RetryOnError => RetryReason.ConnectError,
                TryFailure.ConnectTimedOut when settings.RetryOnTimeout => RetryReason.ConnectTimeout,
                TryFailure.AfterSending when settings.RetryOnError && requestReplayable => RetryReason.Error,
                TryFailure.HeadTimedOut when settings.RetryOnTimeout && requestReplayable => RetryReason.Timeout,
                _ => null,
            };
        }
        if (!requestReplayable) return null;
        int status = context.Response.StatusCode;
        if (pool.Settings.RetryOnStatuses.Contains(status) && (gate?.Discarded == true || gate is not null && !context.Response.HasStarted))
            return RetryReason.Status;
        return null;
    }

    /// <summary>The reason as the retry log line gives it: the status code for a held-back status.</summary>
    private static string Describe(RetryReason reason, HttpContext context) => reason == RetryReason.Status
        ? context.Response.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture)
        : RetryMetrics.Label(reason);

    private DestinationState? PickNext(HttpContext context, BalancingRequestFeature pool)
    {
        var candidates = pool.Untried(d => Usable(pool, d));
        if (candidates.Count <= 1) return candidates.Count == 0 ? null : candidates[0];
        var name = pool.Cluster.Model.Config.LoadBalancingPolicy ?? "PowerOfTwoChoices";
        return _policies.TryGetValue(name, out var policy) ? policy.PickDestination(context, pool.Cluster, candidates) ?? candidates[0] : candidates[0];
    }

    private bool Usable(BalancingRequestFeature pool, DestinationState d) => !pools.Get(pool.ClusterId, d).IsOutOfRotation;

    /// <summary>Buffers a small request body so that a retry can replay it; false when a body cannot be replayed.</summary>
    private static bool PrepareBody(HttpContext context, ClusterBalancingSettings settings)
    {
        if (context.Find<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false }) return true;
        var length = context.Request.ContentLength;
        if (length == 0) return true;
        if (length is null || length > settings.RetryBodyLimit) return false;
        context.Request.EnableBuffering(bufferThreshold: (int)Math.Min(settings.RetryBodyLimit, 1 << 20), bufferLimit: settings.RetryBodyLimit);
        return true;
    }

    /// <summary>The rare case where a held-back response cannot be followed by another try after all (the last candidate's breaker opened meanwhile).</summary>
    private async Task WriteHeldBackFallbackAsync(HttpContext context, BalancingRequestFeature pool, IHttpResponseBodyFeature original)
    {
        int status = context.Response.StatusCode;
        context.Features.Set(original);
        context.Response.Clear();
        await pages.WriteAsync(context, status,
            $"upstream {pool.Current?.Model.Config.Address ?? "-"} answered {status} and no other destination was left to try");
    }

    private async Task WriteRejectionAsync(HttpContext context, BalancingRequestFeature pool)
    {
        var why = pool.Rejection switch
        {
            TryRejection.QueueFull => "every candidate destination is at MaxConnections and its queue is full",
            TryRejection.QueueTimeout => $"no connection slot became free within QueueTimeout ({pool.Settings.QueueTimeout.TotalMilliseconds:0}ms)",
            TryRejection.BreakerOpen => "the destination's circuit breaker is open",
            _ => "unavailable",
        };
        pools.RejectedTotal.Increment();
        BalancingLog.Rejected(logger, pool.ClusterId, context.Request.Method, context.Request.Path, why);
        context.Response.Headers.RetryAfter = "1";
        await pages.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, $"cluster {pool.ClusterId}: {why}");
    }
}
