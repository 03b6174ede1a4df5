using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// First proxy-pipeline step: a request whose declared Content-Length exceeds the limit (global, or the route's
/// MaxRequestBodySize) gets 413 before anything is sent upstream, as nginx's client_max_body_size does.
/// Chunked bodies are still cut off by Kestrel when they cross the limit.
/// </summary>
internal static class RequestBodyLimitStep
{
    private static readonly byte[] Body = Encoding.ASCII.GetBytes("413 Payload Too Large: the request body exceeds the configured limit\n");

    public static Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
        if (limit is null || context.Request.ContentLength is not { } length || length <= limit) return next(context);
        context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
        context.Response.ContentType = "text/plain; charset=utf-8";
        context.Response.ContentLength = Body.Length;
        context.Response.Headers.Connection = "close"; // the unread body makes the connection unusable
        return context.Response.Body.WriteAsync(Body).AsTask();
    }
}
