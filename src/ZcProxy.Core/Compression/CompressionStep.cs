using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Compression;

/// <summary>
/// The proxy-pipeline step of routes with <c>"Compression": "on"</c>, before the cache (and a step of a Static or
/// Return route's answer, as nginx's gzip filter applies to every response). Its body feature is installed
/// first, so the cache's fill tee wraps it: a miss is stored as the origin sent it (one entry, its own head) and encoded
/// on the way to the client; a hit is encoded for each client as it goes out. A response the origin encoded itself
/// passes as it is (and is cached under the origin's Vary).
/// </summary>
internal sealed class CompressionStep(RuntimeOptions options)
{
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
        => InvokeAsync(context, context.Find<IReverseProxyFeature>()?.Route.Config, next);

    /// <summary>For a route answered outside YARP's proxy pipeline (Static, Return): compressed as a proxied one.</summary>
    public Task InvokeAsync(HttpContext context, RouteConfig? route, RequestDelegate next)
    {
        if (CompressionSettings.For(route?.Metadata) is not { } settings) return next(context);
        return CompressAsync(context, next, settings);
    }

    private async Task CompressAsync(HttpContext context, RequestDelegate next, CompressionSettings settings)
    {
        var inner = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        var body = new CompressingBody(context, inner, settings, ContentCodings.Choose(context.Request.Headers[HeaderNames.AcceptEncoding]),
            options.Current.ZeroCopy.SpliceThreshold);
        context.Features.Set<IHttpResponseBodyFeature>(body);
        try
        {
            await next(context);
            await body.FinishAsync();
        }
        finally
        {
            context.Features.Set(inner);
        }
    }
}
