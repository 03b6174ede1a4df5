using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.RateLimiting;

/// <summary>
/// One named policy as it runs: a partitioned limiter of System.Threading.RateLimiting (one token bucket, window or
/// concurrency limiter per key, created on first use and dropped after a while idle, as ASP.NET Core's rate limiting
/// middleware keeps them), the status and Retry-After of a refusal, and the policy's rejection counter.
/// </summary>
internal sealed class RateLimitPolicy : IDisposable
{
    private readonly PartitionedRateLimiter<HttpContext> _limiter;
    private readonly RateLimitKey _key;
    private readonly TimeSpan _fallbackRetryAfter;
    private int _waiting;

    public RateLimitPolicy(string name, RateLimitOptions options, Counter rejections)
    {
        Name = name;
        Options = options;
        Rejections = rejections;
        _key = RateLimitKey.Parse(options.Key, out var error) ?? throw new ArgumentException(error, nameof(options));
        var factory = PartitionFactory(options);
        _limiter = PartitionedRateLimiter.Create<HttpContext, object>(context => _key.Of(context) is { } key
            ? factory(key)
            : RateLimitPartition.GetNoLimiter<object>(NoKey.Instance));
        _fallbackRetryAfter = RateLimitKinds.IsConcurrency(options.Kind) ? TimeSpan.FromSeconds(1) : options.Per;
    }

    /// <summary>
    /// How often the limiters are replenished: PartitionedRateLimiter's heartbeat (100 ms in System.Threading.RateLimiting)
    /// calls TryReplenish on each key's limiter (AutoReplenishment is off: no timer per client). A shorter Per could not be honoured.
    /// </summary>
    public static readonly TimeSpan ReplenishTick = TimeSpan.FromMilliseconds(100);

    public string Name { get; }
    public RateLimitOptions Options { get; }
    public Counter Rejections { get; }

    /// <summary>Requests waiting in this policy's queue now.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>A permit for this request, waiting in the policy's queue when it has one (never longer than the request lives).</summary>
    public ValueTask<RateLimitLease> AcquireAsync(HttpContext context)
    {
        if (Options.Queue == 0) return ValueTask.FromResult(_limiter.AttemptAcquire(context));
        var acquiring = _limiter.AcquireAsync(context, 1, context.RequestAborted);
        return acquiring.IsCompleted ? acquiring : WaitAsync(acquiring);
    }

    private async ValueTask<RateLimitLease> WaitAsync(ValueTask<RateLimitLease> acquiring)
    {
        Interlocked.Increment(ref _waiting);
        try { return await acquiring; }
        finally { Interlocked.Decrement(ref _waiting); }
    }

    /// <summary>When a refused client may try again: what the limiter says, else the policy's period, in whole seconds (at least 1).</summary>
    public int RetryAfterSeconds(RateLimitLease lease)
    {
        var after = lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) && retryAfter > TimeSpan.Zero ? retryAfter : _fallbackRetryAfter;
        return (int)Math.Clamp(Math.Ceiling(after.TotalSeconds), 1, int.MaxValue);
    }

    public void Dispose() => _limiter.Dispose();

    private static Func<object, RateLimitPartition<object>> PartitionFactory(RateLimitOptions o)
    {
        var queue = o.Queue;
        if (RateLimitKinds.IsTokenBucket(o.Kind))
        {
            var options = new TokenBucketRateLimiterOptions
            {
                TokenLimit = o.Limit + o.Burst, TokensPerPeriod = o.Limit, ReplenishmentPeriod = o.Per,
                QueueLimit = queue, QueueProcessingOrder = QueueProcessingOrder.OldestFirst, AutoReplenishment = false,
            };
            return key => RateLimitPartition.GetTokenBucketLimiter(key, _ => options);
        }
        if (RateLimitKinds.IsFixedWindow(o.Kind))
        {
            var options = new FixedWindowRateLimiterOptions
            {
                PermitLimit = o.Limit, Window = o.Per, QueueLimit = queue, QueueProcessingOrder = QueueProcessingOrder.OldestFirst, AutoReplenishment = false,
            };
            return key => RateLimitPartition.GetFixedWindowLimiter(key, _ => options);
        }
        if (RateLimitKinds.IsSlidingWindow(o.Kind))
        {
            var options = new SlidingWindowRateLimiterOptions
            {
                PermitLimit = o.Limit, Window = o.Per, SegmentsPerWindow = o.Segments, QueueLimit = queue,
                QueueProcessingOrder = QueueProcessingOrder.OldestFirst, AutoReplenishment = false,
            };
            return key => RateLimitPartition.GetSlidingWindowLimiter(key, _ => options);
        }
        var concurrency = new ConcurrencyLimiterOptions { PermitLimit = o.Limit, QueueLimit = queue, QueueProcessingOrder = QueueProcessingOrder.OldestFirst };
        return key => RateLimitPartition.GetConcurrencyLimiter(key, _ => concurrency);
    }

    /// <summary>The one partition of requests without a key: never limited.</summary>
    private sealed class NoKey
    {
        public static readonly NoKey Instance = new();
    }
}
