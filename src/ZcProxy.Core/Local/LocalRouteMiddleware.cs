using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Compression;
using ZcProxy.Core.Output;
using ZcProxy.Core.RateLimiting;

namespace ZcProxy.Core.Local;

/// <summary>
/// After routing, before YARP's proxy pipeline: a route without a cluster is answered here (YARP would answer 503), and a
/// request no route matches gets its 404 through <see cref="ErrorPages"/> (so an operator's 404 page applies).
/// A local answer goes through the route's rate limit and compression first, like a proxied response (nginx applies
/// limit_req and gzip to its static files and returns alike).
/// </summary>
internal sealed class LocalRouteMiddleware(RequestDelegate next, ErrorPages pages, StaticFiles files, RateLimitStep rateLimits, CompressionStep compression)
{
    private Endpoint? _lastProxied; // the endpoint found proxied last: most requests have the same one

    public Task InvokeAsync(HttpContext context)
    {
        // Find, not GetEndpoint(): on the own HTTP/1.1 layer a field's read instead of a generic virtual call.
        var endpoint = context.Find<IEndpointFeature>()?.Endpoint;
        if (endpoint is null) return pages.WriteAsync(context, StatusCodes.Status404NotFound, "no route matches this request");
        // An endpoint and its route never change (a reload makes new ones): the last proxied one is known to be proxied.
        if (ReferenceEquals(endpoint, _lastProxied)) return next(context);
        if (endpoint.Metadata.GetMetadata<RouteModel>() is { Cluster: null } route && LocalRoute.For(route.Config) is { } local)
            return AnswerLocally(context, route, local);
        _lastProxied = endpoint;
        return next(context);
    }

    // Apart from InvokeAsync: its lambdas capture the route, and a closure over InvokeAsync's locals would be made for
    // every request, proxied ones included.
    private Task AnswerLocally(HttpContext context, RouteModel route, LocalRoute local)
        => rateLimits.InvokeAsync(context, route.Config, limited => compression.InvokeAsync(limited, route.Config, answered => Answer(answered, local)));

    private Task Answer(HttpContext context, LocalRoute local)
        => local.Files is { } root ? files.ServeAsync(context, root) : local.Answer!.WriteAsync(context);
}
