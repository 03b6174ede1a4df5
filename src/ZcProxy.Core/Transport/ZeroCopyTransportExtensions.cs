using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Transport;

/// <summary>Wiring of the zero-copy transport: services, the connection middleware, and the request middleware.</summary>
internal static class ZeroCopyTransportExtensions
{
    /// <summary>The reactor (one epoll thread, started at first use), the splice pipe pool and the shared transport state.</summary>
    public static IServiceCollection AddZeroCopyTransport(this IServiceCollection services)
    {
        services.TryAddSingleton<ProxyMetrics>();
        services.TryAddSingleton<ReadinessReactor>();
        services.TryAddSingleton(_ => new SplicePipePool());
        services.TryAddSingleton<ZeroCopyTransport>();
        return services;
    }

    /// <summary>
    /// Plaintext HTTP/1.x listeners only, and before any other connection middleware: the output written here
    /// goes straight to the socket, so a TLS layer added after this one would be bypassed by holes.
    /// </summary>
    public static ListenOptions UseZeroCopyTransport(this ListenOptions listenOptions)
    {
        ZeroCopyTransport? transport = null; // resolved at the first connection, once the container is complete
        listenOptions.Use(next => async context =>
        {
            transport ??= listenOptions.ApplicationServices.GetRequiredService<ZeroCopyTransport>();
            var socket = context.Features.Get<IConnectionSocketFeature>()?.Socket;
            if (socket is null || socket.SocketType != SocketType.Stream)
            {
                await next(context);
                return;
            }
            var connection = new ZeroCopyConnection(context, socket, transport);
            await using (connection)
            {
                context.Transport = connection.DuplexPipe;
                context.Features.Set(connection);
                await next(context);
            }
        });
        return listenOptions;
    }

    /// <summary>
    /// On zero-copy connections, sets <see cref="ZeroCopyResponse"/> for the request, capturing Kestrel's own response
    /// body feature before any later step wraps it. Other connections (TLS, admin, HTTP/2) are left untouched.
    /// </summary>
    public static IApplicationBuilder UseZeroCopyResponses(this IApplicationBuilder app) => app.Use(static (context, next) =>
    {
        var connection = context.Features.Get<ZeroCopyConnection>();
        if (connection is null || context.Request.IsHttps
            || !(HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol))
            || context.Features.Get<IHttpResponseBodyFeature>() is not { } kestrelBody)
            return next(context);
        // Kestrel resets its per-request features before the next request on the connection, this one included.
        context.Features.Set(new ZeroCopyResponse(context, connection, kestrelBody));
        return next(context);
    });
}
