using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Output;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// First proxy-pipeline step: a request whose declared Content-Length exceeds the limit (global, or the route's
/// MaxRequestBodySize) gets 413 before anything is sent upstream, as nginx's client_max_body_size does.
/// Chunked bodies are still cut off by Kestrel when they cross the limit. From here on an upload's one timeout is
/// ZcProxy's <see cref="ClientBodyTimeout"/>.
/// </summary>
internal sealed class RequestBodyLimitStep(ErrorPages pages)
{
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        ClientBodyTimeout.TakeOver(context);
        var limit = context.Find<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
        if (limit is null || context.Request.ContentLength is not { } length || length <= limit) return next(context);
        context.Response.Headers.Connection = "close"; // the unread body makes the connection unusable
        // The client may not have sent any of that body yet when the connection closes, so no unread byte would tell the
        // transport to linger (Kestrel's HTTP/1.1 layer says nothing itself): its body, arriving after the close, would
        // reset the connection under the 413. Either transport's connection (or none: HTTP/2 streams need no lingering);
        // the zero-copy connection is found as itself, so its feature collection keeps one entry less per idle connection.
        ((ILingerOnClose?)context.Find<ZeroCopyConnection>() ?? context.Find<ILingerOnClose>())?.LingerOnClose();
        return pages.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, "the request body exceeds the configured limit");
    }
}
