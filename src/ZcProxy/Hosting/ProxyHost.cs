using System.Net;
using System.Reflection;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging.Console;
using ZcProxy.Admin;
using ZcProxy.Core;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Caching.Peers;
using ZcProxy.Core.Compression;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Discovery;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.RateLimiting;
using ZcProxy.Core.Local;
using ZcProxy.Core.Tls;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Http1;
using ZcProxy.Core.Balancing;
using ZcProxy.Demo;
using ZcProxy.Hosting.Systemd;

namespace ZcProxy.Hosting;

/// <summary>Builds and starts the running proxy from a validated configuration: listeners, services, and the request pipeline.</summary>
internal static class ProxyHost
{
    /// <summary>The host's own logger: it logs a failed start with a stack trace, which <see cref="StartAsync"/> reports in one line instead.</summary>
    private const string HostLogCategory = "Microsoft.Extensions.Hosting.Internal.Host";

    /// <summary>
    /// Proves what the start needs from the machine, starts the demo origins (if configured, before the proxy's first
    /// health probes) and then the proxy. Whatever stops it is a <see cref="StartupException"/> with one line saying
    /// what and where; nothing is left running then. <paramref name="replaceServices"/>: tests swap a service for a fake
    /// (a PageCacheRoom over a fake /proc) after everything is registered.
    /// </summary>
    public static async Task<WebApplication> StartAsync(string mainFile, LoadedConfig config, Action<IServiceCollection>? replaceServices = null)
    {
        var app = Build(mainFile, config, replaceServices);
        var demo = app.Services.GetRequiredService<DemoOrigins>();
        try
        {
            await demo.StartAsync(CancellationToken.None);
            await app.StartAsync();
            return app;
        }
        catch (Exception e)
        {
            var line = app.Services.GetRequiredService<ListenSockets>().Describe(e) ?? OneLine(e);
            await demo.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            throw new StartupException(line, e);
        }
    }

    /// <summary>Builds the app (nothing listens yet); throws <see cref="StartupException"/> if the machine cannot run it.</summary>
    private static WebApplication Build(string mainFile, LoadedConfig config, Action<IServiceCollection>? replaceServices)
    {
        var options = config.Options;
        var mainDirectory = Path.GetDirectoryName(Path.GetFullPath(mainFile))!;
        var cacheOptions = options.Cache is { } cache ? cache with { Path = Path.Combine(mainDirectory, cache.Path) } : null;
        if (cacheOptions is not null) StartupChecks.CacheDirectory(mainFile, cacheOptions.Path);
        StartupChecks.AccessLog(mainFile, options.AccessLog);
        var tlsSettings = StartupChecks.Tls(mainFile, options);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = mainDirectory,
        });
        builder.Configuration.Sources.Clear(); // configuration comes from our files only, never appsettings/env
        IHostApplicationLifetime? lifetime = null;
        ConfigureLogging(builder.Logging, () => lifetime?.ApplicationStarted.IsCancellationRequested == true);
        var activation = builder.AddSystemdIntegration();

        var sockets = new ListenSockets(mainFile);
        builder.Services.AddSingleton(sockets);
        var listeners = new ListenerRegistry();
        // Plaintext proxy listeners are served by ZcProxy's own transport when ZeroCopy is on; the rest by Kestrel's sockets.
        var zeroCopyListeners = new ZeroCopyListenerClaims();
        // ZeroCopy.Http1 "own": ZcProxy's HTTP/1.1 layer serves those listeners, calling the application Kestrel would call.
        var ownHttp1 = options.ZeroCopy.OwnHttp1 ? new Http1ApplicationHolder() : null;
        if (ownHttp1 is not null) CapturingServer.Register(builder.Services, ownHttp1);
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
            var tls = kestrel.ApplicationServices.GetRequiredService<TlsCertificateStore>();
            var perClient = kestrel.ApplicationServices.GetRequiredService<ClientConnectionLimit>();
            var runtime = kestrel.ApplicationServices.GetRequiredService<RuntimeOptions>();
            var lingeringCounts = kestrel.ApplicationServices.GetRequiredService<LingeringCounts>();
            for (int i = 0; i < options.Listen.Count; i++)
            {
                var listen = options.Listen[i];
                int index = i;
                sockets.Register(listen.Url, $"$.Listen[{i}].Url");
                bool https = tlsSettings[i] is not null;
                Listen(kestrel, activation, listeners, listen.Url, !https && options.ZeroCopy.Enabled ? zeroCopyListeners : null, lo =>
                {
                    listeners.Proxy.Add(lo);
                    lo.UseClientConnectionLimit(perClient); // first: a refused connection costs no handshake
                    SocketLingeringClose.UseSocketLingeringClose(lo, runtime, lingeringCounts); // below TLS; zero-copy connections pass by
                    if (https)
                    {
                        listeners.Https.Add(lo);
                        // TLS clients (HTTP/1.1 and HTTP/2 by ALPN) are served through YARP's forwarder. Each handshake
                        // asks the store, which a reload swaps: certificates by SNI, versions, ciphers, client certificates.
                        lo.Protocols = tlsSettings[index]!.Protocols;
                        lo.UseHttps(tls.HandshakeOptions(index));
                        SocketLingeringClose.UseAfterTls(lo); // h2 by ALPN: not lingered
                    }
                    lo.UseNewConnectionGrace(TimeProvider.System);
                    if (!https)
                    {
                        // Cleartext: HTTP/1.x, and with Http1AndHttp2 also h2c by prior knowledge (YARP's forwarder serves HTTP/2 clients).
                        lo.Protocols = ListenerProtocols.Parse(listen.Protocols, https: false, out _)!.Value;
                        if (lo.Protocols == HttpProtocols.Http1AndHttp2) lo.UsePriorKnowledgeDetection();
                    }
                    // Before the tap: its parser keeps the Connection field as sent, so only connections it hands to Kestrel need one.
                    if (!https && ownHttp1 is not null && lo.Protocols != HttpProtocols.Http2) lo.UseOwnHttp1(ownHttp1); // Kestrel's HTTP layer is its fallback
                    if (lo.Protocols != HttpProtocols.Http2) lo.UseRequestHeadTap(); // after TLS and h2c detection: it reads plaintext HTTP/1.x heads
                });
            }
            if (options.Admin is { } admin)
            {
                sockets.Register(admin.Url, "$.Admin.Url");
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
            }
            activation.ListenUnclaimed(kestrel, (lo, fd) =>
            {
                if (options.ZeroCopy.Enabled) zeroCopyListeners.ClaimHandle((ulong)fd); // plaintext proxy listener, like the http: ones
                lo.UseClientConnectionLimit(perClient);
                SocketLingeringClose.UseSocketLingeringClose(lo, runtime, lingeringCounts);
                lo.UseNewConnectionGrace(TimeProvider.System);
                if (ownHttp1 is not null) lo.UseOwnHttp1(ownHttp1);
                lo.UseRequestHeadTap();
                listeners.SocketActivated[lo] = fd;
                listeners.Proxy.Add(lo);
            });
        });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = options.DrainTimeout);

        builder.Services.AddZcProxyServices(options);
        builder.Services.AddSingleton(sp => new TlsCertificateStore(mainFile, options, tlsSettings, sp.GetRequiredService<ILogger<TlsCertificateStore>>()));
        if (options.ZeroCopy.Enabled) builder.Services.AddZeroCopyTransport(zeroCopyListeners); // after Kestrel's own transport
        if (cacheOptions is not null) builder.Services.AddDiskCache(cacheOptions);
        builder.Services.UseFileConfig(mainFile, config);
        if (options.Discovery?.Etcd is { } etcd)
            builder.Services.AddHostedService(sp => new EtcdDiscovery(etcd, sp.GetRequiredService<FileConfigProvider>(),
                sp.GetRequiredService<DiscoveryStatus>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<EtcdDiscovery>>(),
                sp.GetService<CachePeers>() is { } peers ? peers.SetRegistered : null));
        if (options.Discovery?.Dns is { Count: > 0 } dns)
            builder.Services.AddHostedService(sp => new DnsDiscovery(dns, sp.GetRequiredService<FileConfigProvider>(),
                sp.GetRequiredService<DiscoveryStatus>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<DnsDiscovery>>()));
        builder.Services.AddHostedService<RuntimeMeters>();
        // Only when configured: without a listener no request span is created and the meter's histograms stay off.
        if (options.Telemetry?.Otlp is { } otlp) builder.Services.AddOtlpExport(otlp);
        builder.Services.AddSingleton<AccessLogWriter>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AccessLogWriter>());
        builder.Services.AddSingleton<DemoOrigins>();
        sockets.ObserveBinds(builder.Services); // last: every listener factory is registered by now
        replaceServices?.Invoke(builder.Services);

        var app = builder.Build();
        lifetime = app.Lifetime;
        var tlsStore = app.Services.GetRequiredService<TlsCertificateStore>();
        app.Services.GetRequiredService<RuntimeOptions>().Changed += (_, next) => tlsStore.Apply(next);
        var metrics = app.Services.GetRequiredService<ProxyMetrics>();
        ProcessMetrics.Register(metrics);
        var connections = app.Services.GetRequiredService<ActiveConnections>();
        metrics.Gauge("zcproxy_client_connections", "Open client connections, proxy and admin listeners (Kestrel's kestrel.active_connections of this host).", () => connections.Count);
        var demo = app.Services.GetRequiredService<DemoOrigins>();
        app.Lifetime.ApplicationStopped.Register(() => demo.StopAsync(CancellationToken.None).GetAwaiter().GetResult());
        var startupLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ZcProxy.Hosting");
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            foreach (var url in listeners.ProxyUrls) HostingLog.ProxyListening(startupLog, url);
            if (listeners.AdminEndPoint is { } adminEndPoint) HostingLog.AdminListening(startupLog, adminEndPoint);
        });
        // Find: no generic virtual call per request (a proxy connection's answer is remembered as absent, see ConnectionFeatureMisses).
        app.MapWhen(context => context.Find<AdminConnectionFeature>() is not null, AdminEndpoints.Map);
        // Kernel moves (sendfile, splice, direct I/O) for the body sender, on zero-copy (plaintext HTTP/1.x) connections only.
        if (options.ZeroCopy.Enabled) app.UseZeroCopyResponses();
        app.UseMiddleware<RequestSpanMiddleware>(); // outside the access log: its $trace_id is the span's
        app.UseMiddleware<AccessLogMiddleware>();
        app.UseMiddleware<RequestHeadMiddleware>();
        app.UseMiddleware<ServerWideOptionsMiddleware>(); // "OPTIONS *" asks about this server, not a path: answered here, never routed
        app.UseRouting();
        app.UseMiddleware<LocalRouteMiddleware>(); // routes without a cluster (Static, Return), and the 404 of no route
        app.MapReverseProxy(proxy =>
        {
            // Only for routes whose Metadata asks for one of them (RouteSteps decides once per route); the others skip them.
            RouteSteps.Use(proxy, steps =>
            {
                steps.Use(app.Services.GetRequiredService<RateLimitStep>().InvokeAsync); // first, as nginx's limit_req: before the cache and the balancer
                steps.Use(app.Services.GetRequiredService<CompressionStep>().InvokeAsync); // before the cache: the cache's fill wraps it (one identity entry, encoded per client)
                steps.UseDiskCache();
            });
            proxy.Use(app.Services.GetRequiredService<RequestBodyLimitStep>().InvokeAsync);
            // Admin state, affinity, breakers, backups, balancing, passive health (skipped at once where they would change
            // nothing: PoolFastPath), then last, one frame: upstream timing, retries, per try the connection limit and
            // breaker, then the zero-copy forwarder, which declines to YARP's per request (TLS/h2 clients, upgrades,
            // https upstreams, ZeroCopy.Enabled false).
            proxy.UsePool(ZeroCopyForwardingExtensions.UpstreamTries);
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

    /// <summary>The failed start's one line: the innermost message that says something, without stack frames.</summary>
    private static string OneLine(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } or TargetInvocationException && e.InnerException is not null) e = e.InnerException!;
        if (e is ConfigEntryException) return e.Message; // already the operator's line: file, JSON path, what failed
        return $"{e.Message.ReplaceLineEndings(" ")} ({e.GetType().Name})";
    }

    private static void ConfigureLogging(ILoggingBuilder logging, Func<bool> started)
    {
        logging.ClearProviders();
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.ColorBehavior = Console.IsOutputRedirected || Console.IsErrorRedirected ? LoggerColorBehavior.Disabled : LoggerColorBehavior.Default;
        });
        ScopelessLoggerProvider.Wrap<ConsoleLoggerProvider>(logging.Services);
        logging.SetMinimumLevel(LogLevel.Information);
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
        logging.AddFilter("Yarp", LogLevel.Warning);
        // These two warn on every request while a cluster has no destination; the pool steps log that once a second instead.
        logging.AddFilter("Yarp.ReverseProxy.LoadBalancing.LoadBalancingMiddleware", LogLevel.Error);
        logging.AddFilter("Yarp.ReverseProxy.Forwarder.ForwarderMiddleware", LogLevel.Error);
        logging.AddFilter("Microsoft.AspNetCore.DataProtection", LogLevel.Error);
        // ASP.NET Core starts an Activity for every request whenever this category logs at any level (its request
        // starting/finished lines, which ZcProxy never shows): off, a request allocates no Activity unless a tracing
        // listener asks for one (RequestSpanMiddleware, docs in README "Tracing"). Its start-up errors still reach the
        // operator as StartAsync's one line.
        logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        // Until the listeners are up, a failure is StartAsync's to report (in one line, not the host's stack trace).
        logging.AddFilter(HostLogCategory, level => level >= LogLevel.Information && started());
    }
}
