using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using ZcProxy.Core.Transport;

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
        var tap = context.Features.Get<RequestHeadTap>();
        var rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        var connection = tap is not null && !string.IsNullOrEmpty(rawTarget) ? tap.TakeConnectionField(request.Method, rawTarget, request.Protocol) : null;

        if (RequestHeadCheck.Problem(request) is { } problem)
        {
            LogRejected(logger, context.Connection.RemoteIpAddress, problem);
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            context.Response.Headers.Connection = "close"; // the body's framing is in doubt: never read another request here
            return Task.CompletedTask;
        }
        if (connection is { } field) context.Features.Set(new ReceivedConnectionField(field));
        return next(context);
    }

    [LoggerMessage(EventId = 3010, Level = LogLevel.Debug, Message = "rejected a request from {Client} with 400: {Problem}")]
    private static partial void LogRejected(ILogger logger, System.Net.IPAddress? client, string problem);
}
