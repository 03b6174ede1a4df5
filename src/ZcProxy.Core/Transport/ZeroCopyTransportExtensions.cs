using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Transport;

/// <summary>Wiring of the zero-copy transport: services, listeners, and the request middleware.</summary>
internal static class ZeroCopyTransportExtensions
{
    /// <summary>
    /// The event loops (one per core), the splice pipe pool (sized against the kernel's pipe limits), the shared transport state, and ZcProxy's connection
    /// listener factory. Call after the web host's own services (Kestrel's socket transport): Kestrel asks the last
    /// registered factory first, and ours takes only the endpoints in <see cref="ZeroCopyListenerClaims"/>.
    /// </summary>
    public static IServiceCollection AddZeroCopyTransport(this IServiceCollection services, ZeroCopyListenerClaims? claims = null)
    {
        services.AddEventLoops();
        services.TryAddSingleton<LingeringCounts>(); // shared with Kestrel's socket transport (SocketLingeringClose)
        services.TryAddSingleton<ZeroCopyTransport>();
        services.TryAddSingleton(claims ?? new ZeroCopyListenerClaims());
        services.AddSingleton<IConnectionListenerFactory, ZeroCopyListenerFactory>();
        return services;
    }

    /// <summary>
    /// The event loops (one per core, started when first resolved) and the two splice pipe pools (each made when first
    /// resolved), shared by the zero-copy HTTP transport and the stream proxy: HTTP bodies', and relays' (keyed
    /// <see cref="RelayPipesKey"/>: TCP streams and upgraded connections, pipes of ZeroCopy.RelayPipeSize).
    /// </summary>
    public static IServiceCollection AddEventLoops(this IServiceCollection services)
    {
        services.TryAddSingleton<ProxyMetrics>();
        services.TryAddSingleton(sp => new EventLoops(Environment.ProcessorCount, sp.GetService<ILogger<EventLoop>>()));
        services.TryAddSingleton(sp => new SplicePipePool(PipeBudget.ForBodies(), sp.GetRequiredService<ProxyMetrics>(), sp.GetService<ILogger<SplicePipePool>>()));
        services.TryAddKeyedSingleton(RelayPipesKey, (sp, _) =>
        {
            var zeroCopy = sp.GetService<RuntimeOptions>()?.Current.ZeroCopy ?? new ZeroCopyOptions();
            return new SplicePipePool(PipeBudget.ForRelays(zeroCopy.RelayPipeSize, zeroCopy.RelayPipeGrowSize),
                sp.GetRequiredService<ProxyMetrics>(), sp.GetService<ILogger<SplicePipePool>>(), SplicePipeUse.Relays);
        });
        return services;
    }

    /// <summary>The service key of the relays' pipe pool.</summary>
    public const string RelayPipesKey = "relay";

    /// <summary>A plaintext HTTP/1.x listener on <paramref name="address"/>:<paramref name="port"/> served by ZcProxy's transport.</summary>
    public static void ListenZeroCopy(this KestrelServerOptions kestrel, IPAddress address, int port, Action<ListenOptions> configure)
        => kestrel.Listen(new ZeroCopyEndPoint(address, port), configure);

    /// <summary>
    /// On zero-copy connections, sets <see cref="ZeroCopyResponse"/> for the request, capturing Kestrel's own response
    /// body feature before any later step wraps it. Other connections (TLS, admin, HTTP/2) are left untouched.
    /// </summary>
    public static IApplicationBuilder UseZeroCopyResponses(this IApplicationBuilder app) => app.Use(static (context, next) =>
    {
        var connection = context.Find<ZeroCopyConnection>();
        if (connection is null || context.Request.IsHttps
            || !(HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol))
            || context.Find<IHttpResponseBodyFeature>() is not { } kestrelBody)
            return next(context);
        // Kestrel resets its per-request features before the next request on the connection, this one included; the
        // object itself is the connection's, reset for each request.
        context.Put(connection.CurrentRequest(context, kestrelBody));
        return next(context);
    });
}
