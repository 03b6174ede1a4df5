using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Output;

namespace ZcProxy.Core.Local;

/// <summary>
/// After routing, before YARP's proxy pipeline: a route without a cluster is answered here (YARP would answer 503), and a
/// request no route matches gets its 404 through <see cref="ErrorPages"/> (so an operator's 404 page applies).
/// </summary>
internal sealed class LocalRouteMiddleware(RequestDelegate next, ErrorPages pages, StaticFiles files)
{
    public Task InvokeAsync(HttpContext context)
    {
        var endpoint = context.GetEndpoint();
        if (endpoint is null) return pages.WriteAsync(context, StatusCodes.Status404NotFound, "no route matches this request");
        if (endpoint.Metadata.GetMetadata<RouteModel>() is { Cluster: null } route && LocalRoute.For(route.Config) is { } local)
            return local.Files is { } root ? files.ServeAsync(context, root) : local.Answer!.WriteAsync(context);
        return next(context);
    }
}
