using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ZcProxy.Core.Local;

/// <summary>
/// Answers "OPTIONS *" (asterisk-form, RFC 9112 §3.2.4; over HTTP/2 and 3 a ":path" of "*"), a question about the server
/// in general rather than a resource (RFC 9110 §9.3.7): 200 with Content-Length 0, before routing, on every listener.
/// It cannot be forwarded as sent on both forwarders: Kestrel gives it an empty path, and YARP's HttpClient writes a
/// request target from a URI, whose path always starts with '/', so the upstream got "OPTIONS /", a question about "/".
/// A reverse proxy is the origin server to its clients (RFC 9110 §7.6), so the server the client asks about is this one.
/// No Allow field: the methods a resource allows are the upstream's to say, and the proxy forwards any method.
/// (HAProxy forwards "OPTIONS *" as is, nginx rejects it with 400.)
/// </summary>
internal sealed class ServerWideOptionsMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (!IsServerWideOptions(context)) return next(context);
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentLength = 0; // RFC 9110 §9.3.7: an OPTIONS response without content says so
        return Task.CompletedTask;
    }

    internal static bool IsServerWideOptions(HttpContext context)
        => HttpMethods.IsOptions(context.Request.Method) && !context.Request.Path.HasValue
            && context.Find<IHttpRequestFeature>()?.RawTarget == "*";
}
