using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Http1;

namespace ZcProxy.Core.Forwarding;

/// <summary>The Connection field of a request as the client sent it (Kestrel may have shortened it).</summary>
internal sealed class ReceivedConnectionField(StringValues values)
{
    public StringValues Values { get; } = values;
}

/// <summary>
/// The first step of every proxied HTTP/1.x request, while its head is the last thing read from the connection and
/// nothing has been forwarded: rejects a head that fails <see cref="RequestHeadCheck"/> (400, connection closed, the
/// body never read), and takes the Connection field as sent from the <see cref="RequestHeadTap"/> for
/// <see cref="ConnectionOptionsTransforms"/>.
/// </summary>
internal sealed partial class RequestHeadMiddleware(RequestDelegate next, ILogger<RequestHeadMiddleware> logger)
{
    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (!HttpProtocol.IsHttp11(request.Protocol) && !HttpProtocol.IsHttp10(request.Protocol)) return next(context);
        // ZcProxy's own HTTP/1.1 layer parsed it: its parser keeps every field as sent (no tap needed) and accepts only
        // heads that pass the check below and more (tchar names, printable ASCII values, no Transfer-Encoding).
        if (context.Features is Http1Exchange exchange && ReferenceEquals(request.Headers, exchange.ParsedHeaders)) return next(context);
        var tap = context.Find<RequestHeadTap>();
        StringValues parsed = default;
        StringValues? connection = null;
        if (tap is not null)
        {
            parsed = request.Headers.Connection;
            var rawTarget = context.Find<IHttpRequestFeature>()?.RawTarget;
            // Kestrel shortens a Connection field but never drops one: without it, the head had none to look for.
            if (parsed.Count == 0 || string.IsNullOrEmpty(rawTarget)) tap.Forget();
            else connection = tap.TakeConnectionField(request.Method, rawTarget, request.Protocol);
        }

        if (RequestHeadCheck.Problem(request) is { } problem)
        {
            LogRejected(logger, context.Connection.RemoteIpAddress, problem);
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            context.Response.Headers.Connection = "close"; // the body's framing is in doubt: never read another request here
            return Task.CompletedTask;
        }
        // Only a field Kestrel shortened needs carrying: otherwise its own value is the one sent (and no feature is allocated).
        if (connection is { } field && !StringValues.Equals(field, parsed)) context.Put(new ReceivedConnectionField(field));
        return next(context);
    }

    [LoggerMessage(EventId = 3010, Level = LogLevel.Debug, Message = "rejected a request from {Client} with 400: {Problem}")]
    private static partial void LogRejected(ILogger logger, System.Net.IPAddress? client, string problem);
}
