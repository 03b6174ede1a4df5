using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.RateLimiting;

/// <summary>
/// The first proxy-pipeline step (and the first step of a Static or Return route's answer): a request on a route with a RateLimiterPolicy takes a permit of that policy for its
/// key, or is refused with the policy's status (429) and Retry-After, before the cache, the balancer or an upstream
/// sees it (nginx's limit_req runs in the same early phase). A Concurrency permit is held until the response is done.
/// With no policy configured the step costs one read; routes without a policy cost one Metadata lookup more.
/// </summary>
internal sealed class RateLimitStep(RateLimitPolicies policies)
{
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
        => InvokeAsync(context, context.Find<IReverseProxyFeature>()?.Route.Config, next);

    /// <summary>For a route answered outside YARP's proxy pipeline (Static, Return): the same limit as a proxied one.</summary>
    public Task InvokeAsync(HttpContext context, RouteConfig? route, RequestDelegate next)
    {
        if (policies.IsEmpty) return next(context);
        if (route?.Metadata is not { } metadata
            || !metadata.TryGetValue(RouteRateLimits.MetadataKey, out var name)
            || policies.Find(name) is not { } policy)
            return next(context);
        return LimitAsync(context, next, policy);
    }

    /// <summary>The route names a policy (whether it is configured is asked per request: a reload may add it).</summary>
    public static bool MayLimit(RouteConfig route) => route.Metadata?.ContainsKey(RouteRateLimits.MetadataKey) == true;

    private static async Task LimitAsync(HttpContext context, RequestDelegate next, RateLimitPolicy policy)
    {
        RateLimitLease lease;
        try
        {
            lease = await policy.AcquireAsync(context);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return; // the client left while waiting in the queue: nobody to answer
        }
        using var permit = lease;
        if (permit.IsAcquired)
        {
            await next(context);
            return;
        }
        policy.Rejections.Increment();
        var response = context.Response;
        response.StatusCode = policy.Options.Status;
        response.Headers.RetryAfter = policy.RetryAfterSeconds(lease).ToString(CultureInfo.InvariantCulture);
        response.ContentType = "text/plain; charset=utf-8";
        await response.WriteAsync($"{policy.Options.Status} {ReasonPhrases.GetReasonPhrase(policy.Options.Status)}: rate limit '{policy.Name}'\n", context.RequestAborted);
    }
}
