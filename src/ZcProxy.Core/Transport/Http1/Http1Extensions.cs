using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>Wiring of ZcProxy's HTTP/1.1 layer (ZeroCopy.Http1: "own").</summary>
internal static class Http1Extensions
{
    /// <summary>
    /// Connection middleware of a plaintext zero-copy HTTP/1.x listener, before the request-head tap: serves HTTP/1.1
    /// itself and hands a connection to the rest of the chain (the tap, then Kestrel) at the first request it does not take. h2c connections (prior
    /// knowledge) and connections of other transports go to Kestrel at once.
    /// </summary>
    public static ListenOptions UseOwnHttp1(this ListenOptions listenOptions, Http1ApplicationHolder holder)
    {
        var kestrel = listenOptions.KestrelServerOptions;
        var limits = kestrel.Limits;
        var http1 = new Http1Limits(
            new Http1HeadLimits(limits.MaxRequestLineSize, limits.MaxRequestHeadersTotalSize, limits.MaxRequestHeaderCount),
            limits.KeepAliveTimeout, limits.RequestHeadersTimeout, limits.MaxRequestBodySize);
        var logger = kestrel.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("ZcProxy.Transport.Http1");
        listenOptions.Use(next => context =>
        {
            if (holder.Application is not { } application || CleartextHttp2.IsHttp2(context)
                || context.Features.Get<ZeroCopyConnection>() is not { } connection)
                return next(context);
            return Http1Connection.ServeAsync(context, connection, next, holder, application, http1, logger);
        });
        return listenOptions;
    }
}
