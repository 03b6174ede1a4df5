using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// The per-try part of <see cref="RetryStep"/>: takes one of the picked destination's MaxConnections slots (a
/// destination without a limit has none to take: no lock, nothing counted but the in-flight count). When it is full,
/// another candidate with a free slot is used instead; when none has one, the request waits in the destination's
/// bounded queue for QueueTimeout; a full queue or the timeout ends the try with 503 + Retry-After
/// (retried on another destination when retries allow). Also keeps the in-flight count the policies balance on, and
/// runs the try through the destination's breaker (<see cref="CircuitBreakerFeedback"/>). Not a step of its own: the
/// retry step's frame awaits the try between <see cref="EnterAsync"/> and <see cref="Exit"/>, so a proxied request
/// boxes one frame for retries, limits and breakers instead of one each.
/// </summary>
internal sealed class ConnectionLimits(DestinationRegistry pools)
{
    /// <summary>
    /// Takes the try's slot (and breaker permit). Completes synchronously unless the request has to queue; the
    /// returned slot says whether to forward, and must be given to <see cref="Exit"/> whatever happens.
    /// </summary>
    public ValueTask<TrySlot> EnterAsync(HttpContext context, BalancingRequestFeature? pool)
    {
        var proxy = context.ReverseProxyFeature();
        if (pool is null || proxy.AvailableDestinations.Count == 0) return new(TrySlot.Unlimited);

        var destination = proxy.AvailableDestinations[0];
        // The fast path's plan has the destination's runtime and settings at hand: no lookup by two ids, no settings lookup.
        int planned = pool.Plan?.IndexOf(destination) ?? -1;
        var runtime = planned >= 0 ? pool.Plan!.Runtimes[planned] : pools.Get(pool.ClusterId, destination);
        int limit = planned >= 0 ? pool.Plan!.DestinationSettings[planned].MaxConnections : Limit(destination);
        // No limit, nothing can queue: no slot to take (its lock was two monitor enters per request on a line both loops write).
        if (limit <= 0) return new(Begin(context, pool, destination, runtime, holdsSlot: false));
        if (runtime.Slots.TryEnter(limit)) return new(Begin(context, pool, destination, runtime, holdsSlot: true));
        if (FreeAlternative(pool, destination) is { } other)
        {
            var otherRuntime = pools.Get(pool.ClusterId, other);
            int otherLimit = Limit(other);
            if (otherLimit <= 0 || otherRuntime.Slots.TryEnter(otherLimit))
            {
                proxy.AvailableDestinations = other;
                return new(Begin(context, pool, other, otherRuntime, holdsSlot: otherLimit > 0));
            }
        }
        return new(QueueAsync(context, pool, destination, runtime, limit));
    }

    /// <summary>Ends the try: the breaker's outcome (or its abandonment when the try threw), the in-flight count, the slot.</summary>
    public void Exit(HttpContext context, BalancingRequestFeature? pool, in TrySlot slot, bool completed)
    {
        if (slot.Runtime is not { } runtime) return;
        try
        {
            if (slot.BreakerEntered)
            {
                if (completed) CircuitBreakerFeedback.End(context, pool!, runtime, slot.Breaker, slot.Trial);
                else slot.Breaker?.Abandon(slot.Trial);
            }
        }
        finally
        {
            runtime.EndRequest(pools.Time.GetElapsedTime(slot.Start), slot.CountedOn);
            if (slot.HoldsSlot) runtime.Slots.Exit();
        }
    }

    private async Task<TrySlot> QueueAsync(HttpContext context, BalancingRequestFeature pool, DestinationState destination, DestinationRuntime runtime, int limit)
    {
        SlotResult result;
        try
        {
            result = await runtime.Slots.EnterAsync(limit, pool.Settings.MaxQueue, pool.Settings.QueueTimeout, context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            context.Response.StatusCode = 499; // nginx's "client closed request": it left while queued
            return TrySlot.Refused;
        }
        if (result == SlotResult.Entered) return Begin(context, pool, destination, runtime, holdsSlot: true);
        pool.Current = destination;
        pool.Rejection = result == SlotResult.QueueFull ? TryRejection.QueueFull : TryRejection.QueueTimeout;
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        return TrySlot.Refused;
    }

    /// <summary>The slot is held (or none is needed): counts the request in flight and asks the breaker (which may still refuse the try).</summary>
    private TrySlot Begin(HttpContext context, BalancingRequestFeature pool, DestinationState destination, DestinationRuntime runtime, bool holdsSlot)
    {
        pool.Current = destination;
        pool.Rejection = TryRejection.None;
        int countedOn = runtime.BeginRequest();
        long start = pools.Time.GetTimestamp();
        bool admitted = CircuitBreakerFeedback.TryBegin(context, pool, runtime, out var breaker, out bool trial);
        return new TrySlot(admitted, runtime, start, breaker, trial, admitted, holdsSlot, countedOn);
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

/// <summary>
/// One try's hold on its destination: <see cref="Forward"/> false when the try was refused (queue, breaker, client gone);
/// <see cref="Runtime"/> set while the try counts against its destination (ended by <see cref="ConnectionLimits.Exit"/>),
/// <see cref="HoldsSlot"/> when it also holds one of the destination's MaxConnections slots (none without a limit),
/// <see cref="CountedOn"/> the stripe its in-flight count went to (<see cref="DestinationRuntime.BeginRequest"/>).
/// </summary>
internal readonly record struct TrySlot(bool Forward, DestinationRuntime? Runtime, long Start, DestinationBreaker? Breaker, bool Trial, bool BreakerEntered,
    bool HoldsSlot, int CountedOn)
{
    /// <summary>No pool state or no candidate: forwarded as it is (the forwarder reports the missing destination).</summary>
    public static TrySlot Unlimited => new(true, null, 0, null, false, false, false, 0);

    /// <summary>Refused before a slot was held.</summary>
    public static TrySlot Refused => new(false, null, 0, null, false, false, false, 0);
}
