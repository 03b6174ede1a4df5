using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Forwarding;

/// <summary>The Connection field of a request as the client sent it (Kestrel may have shortened it).</summary>
internal sealed class ReceivedConnectionField(StringValues values)
{
    public StringValues Values { get; } = values;
}

/// <summary>
/// The first step of every proxied request, while its head is the last thing read from the connection: takes the
/// Connection field as sent from the <see cref="RequestHeadTap"/>, for <see cref="ConnectionOptionsTransforms"/>.
/// </summary>
internal sealed class RequestHeadMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (context.Features.Get<RequestHeadTap>() is { } tap
            && (HttpProtocol.IsHttp11(request.Protocol) || HttpProtocol.IsHttp10(request.Protocol))
            && context.Features.Get<IHttpRequestFeature>()?.RawTarget is { Length: > 0 } rawTarget
            && tap.TakeConnectionField(request.Method, rawTarget, request.Protocol) is { } connection)
            context.Features.Set(new ReceivedConnectionField(connection));
        return next(context);
    }
}
