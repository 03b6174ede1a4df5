using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging.Console;
using ZcProxy.Admin;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Balancing;
using ZcProxy.Demo;
using ZcProxy.Hosting.Systemd;

namespace ZcProxy.Hosting;

/// <summary>Builds the running proxy from a validated configuration: listeners, services, and the request pipeline.</summary>
internal static class ProxyHost
{
    /// <summary>Builds the app; demo origins (if configured) are started before the proxy's first health probes.</summary>
    public static async Task<WebApplication> BuildAsync(string mainFile, LoadedConfig config)
    {
        var options = config.Options;
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = Path.GetDirectoryName(Path.GetFullPath(mainFile)),
        });
        builder.Configuration.Sources.Clear(); // configuration comes from our files only, never appsettings/env
        ConfigureLogging(builder.Logging);
        var activation = builder.AddSystemdIntegration();

        var listeners = new ListenerRegistry();
        // Plaintext proxy listeners are served by ZcProxy's own transport when ZeroCopy is on; the rest by Kestrel's sockets.
        var zeroCopyListeners = new ZeroCopyListenerClaims();
        builder.Services.AddSingleton(listeners);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // Header values pass through as bytes (obs-text included); see HeaderEncoding.
            kestrel.RequestHeaderEncodingSelector = HeaderEncoding.ForRequestHeader;
            kestrel.ResponseHeaderEncodingSelector = HeaderEncoding.ForResponseHeader;
            var limits = options.Limits;
            kestrel.Limits.MaxRequestBodySize = limits.MaxRequestBodySize == 0 ? null : limits.MaxRequestBodySize;
            kestrel.Limits.MaxRequestHeadersTotalSize = (int)Math.Min(int.MaxValue, limits.MaxRequestHeadersSize);
            kestrel.Limits.KeepAliveTimeout = limits.KeepAliveTimeout;
            kestrel.Limits.RequestHeadersTimeout = limits.RequestHeadersTimeout;
            kestrel.Limits.MaxConcurrentConnections = limits.MaxConnections == 0 ? null : limits.MaxConnections;
            foreach (var listen in options.Listen)
            {
                bool https = listen.Url.StartsWith("https:", StringComparison.OrdinalIgnoreCase);
                Listen(kestrel, activation, listeners, listen.Url, !https && options.ZeroCopy.Enabled ? zeroCopyListeners : null, lo =>
                {
                    listeners.Proxy.Add(lo);
                    if (https)
                    {
                        // TLS clients (HTTP/1.1 and HTTP/2 by ALPN) are served through YARP's forwarder.
                        lo.Protocols = HttpProtocols.Http1AndHttp2;
                        lo.UseHttps(ListenerCertificate.Load(listen, Path.GetDirectoryName(Path.GetFullPath(mainFile))!));
                    }
                    lo.UseRequestHeadTap(); // after TLS: it reads the plaintext head
                });
            }
            if (options.Admin is { } admin)
                Listen(kestrel, activation, listeners, admin.Url, null, lo =>
                {
                    listeners.Admin = lo;
                    lo.Protocols = HttpProtocols.Http1;
                    lo.Use(next => connection =>
                    {
                        connection.Features.Set(AdminConnectionFeature.Instance);
                        return next(connection);
                    });
                });
            activation.ListenUnclaimed(kestrel, (lo, fd) =>
            {
                if (options.ZeroCopy.Enabled) zeroCopyListeners.ClaimHandle((ulong)fd); // plaintext proxy listener, like the http: ones
                lo.UseRequestHeadTap();
                listeners.SocketActivated[lo] = fd;
                listeners.Proxy.Add(lo);
            });
        });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = options.DrainTimeout);

        builder.Services.AddZcProxyServices(options);
        if (options.ZeroCopy.Enabled) builder.Services.AddZeroCopyTransport(zeroCopyListeners); // after Kestrel's own transport
        if (options.Cache is { } cacheOptions)
            builder.Services.AddDiskCache(cacheOptions with { Path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(mainFile))!, cacheOptions.Path) });
        builder.Services.UseFileConfig(mainFile, config);
        builder.Services.AddHostedService<RuntimeMeters>();
        builder.Services.AddSingleton<AccessLogWriter>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AccessLogWriter>());
        builder.Services.AddSingleton<DemoOrigins>();

        var app = builder.Build();
        var metrics = app.Services.GetRequiredService<ProxyMetrics>();
        ProcessMetrics.Register(metrics);
        var connections = app.Services.GetRequiredService<ActiveConnections>();
        metrics.Gauge("zcproxy_client_connections", "Open client connections, proxy and admin listeners (Kestrel's kestrel.active_connections of this host).", () => connections.Count);
        var demo = app.Services.GetRequiredService<DemoOrigins>();
        await demo.StartAsync(CancellationToken.None);
        app.Lifetime.ApplicationStopped.Register(() => demo.StopAsync(CancellationToken.None).GetAwaiter().GetResult());
        var startupLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ZcProxy.Hosting");
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            foreach (var endPoint in listeners.ProxyEndPoints) HostingLog.ProxyListening(startupLog, endPoint);
            if (listeners.AdminEndPoint is { } adminEndPoint) HostingLog.AdminListening(startupLog, adminEndPoint);
        });
        app.MapWhen(context => context.Features.Get<AdminConnectionFeature>() is not null, AdminEndpoints.Map);
        // Kernel moves (sendfile, splice, direct I/O) for the body sender, on zero-copy (plaintext HTTP/1.x) connections only.
        if (options.ZeroCopy.Enabled) app.UseZeroCopyResponses();
        app.UseMiddleware<AccessLogMiddleware>();
        app.UseMiddleware<RequestHeadMiddleware>();
        app.UseRouting();
        app.MapReverseProxy(proxy =>
        {
            proxy.UseDiskCache();
            proxy.Use(RequestBodyLimitStep.InvokeAsync);
            proxy.UseSessionAffinity();
            proxy.UseCircuitBreakers();
            proxy.UseBackupDestinations();
            proxy.UseLoadBalancing();
            proxy.UsePassiveHealthChecks();
            var upstreamTiming = app.Services.GetRequiredService<UpstreamTimingStep>();
            proxy.Use(upstreamTiming.InvokeAsync);
            proxy.UseRetries();
            proxy.UseConnectionLimits();
            proxy.UseCircuitBreakerFeedback();
            proxy.UseZeroCopyForwarding(); // last: declines to YARP's forwarder per request (TLS/h2 clients, upgrades, https upstreams, ZeroCopy.Enabled false)
        });
        return app;
    }

    /// <summary>One listener; <paramref name="zeroCopy"/> non-null: served by ZcProxy's transport (plaintext proxy listeners).</summary>
    private static void Listen(KestrelServerOptions kestrel, SocketActivation activation, ListenerRegistry listeners, string url,
        ZeroCopyListenerClaims? zeroCopy, Action<ListenOptions> configure)
    {
        if (!ListenUrl.TryParse(url, out var parsed, out var error)) throw new InvalidOperationException($"{url}: {error}");
        if (activation.TryClaim(parsed!, url, out var inherited))
        {
            zeroCopy?.ClaimHandle((ulong)inherited.Fd);
            kestrel.ListenHandle((ulong)inherited.Fd, lo => { listeners.SocketActivated[lo] = inherited.Fd; configure(lo); });
        }
        else if (parsed!.IsLocalhost && parsed.Port != 0)
        {
            zeroCopy?.ClaimLocalhost(parsed.Port);
            kestrel.ListenLocalhost(parsed.Port, configure);
        }
        else
        {
            var address = parsed.Address ?? IPAddress.Loopback;
            kestrel.Listen(zeroCopy is null ? new IPEndPoint(address, parsed.Port) : new ZeroCopyEndPoint(address, parsed.Port), configure);
        }
    }

    private static void ConfigureLogging(ILoggingBuilder logging)
    {
        logging.ClearProviders();
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.ColorBehavior = Console.IsOutputRedirected || Console.IsErrorRedirected ? LoggerColorBehavior.Disabled : LoggerColorBehavior.Default;
        });
        logging.SetMinimumLevel(LogLevel.Information);
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
        logging.AddFilter("Yarp", LogLevel.Warning);
        // These two warn on every request while a cluster has no destination; the pool steps log that once a second instead.
        logging.AddFilter("Yarp.ReverseProxy.LoadBalancing.LoadBalancingMiddleware", LogLevel.Error);
        logging.AddFilter("Yarp.ReverseProxy.Forwarder.ForwarderMiddleware", LogLevel.Error);
        logging.AddFilter("Microsoft.AspNetCore.DataProtection", LogLevel.Error);
    }
}
