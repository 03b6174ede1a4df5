using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// An upgraded connection (a WebSocket) on Kestrel's socket transport (TLS listeners, <c>ZeroCopy.Enabled: false</c>:
/// YARP's copying path) asks its close to linger (<see cref="SocketLingeringClose"/>): when the upstream ends the
/// tunnel, the client may still be sending at any time, and a byte of it arriving after the close made the kernel reset
/// the connection under the close frame the client had not read yet (the client's next send failed with a broken pipe,
/// WebSocketCloseTests). Lingering sends the FIN right after the last byte and drops what the client still sends until
/// it closes. Zero-copy tunnels end both directions themselves and do not linger (their connection is not found as
/// <see cref="ILingerOnClose"/>).
/// </summary>
internal static class UpgradeLingeringStep
{
    public static Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (context.Find<IHttpUpgradeFeature>()?.IsUpgradableRequest != true || context.Find<ILingerOnClose>() is not { } linger) return next(context);
        return ProxyAsync(context, next, linger);
    }

    private static async Task ProxyAsync(HttpContext context, RequestDelegate next, ILingerOnClose linger)
    {
        await next(context);
        if (context.Response.StatusCode == StatusCodes.Status101SwitchingProtocols) linger.LingerOnClose(); // the tunnel ended: the connection closes next
    }
}
