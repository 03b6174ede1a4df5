using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy.Configuration;
using ZcProxy.Admin;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Compression;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Discovery;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Output;
using ZcProxy.Core.RateLimiting;
using ZcProxy.Core.StreamProxy;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Hosting;

/// <summary>
/// The one place the proxy's services are registered. `check` builds the same container (without binding
/// anything) so that what `check` accepts is exactly what a start or reload accepts.
/// </summary>
internal static class ProxyServices
{
    public static IServiceCollection AddZcProxyServices(this IServiceCollection services, ZcProxyOptions initialOptions)
    {
        services.AddAuthorization();
        services.AddCors();
        services.AddReverseProxy();
        // YARP's validator needs the authorization policy provider, but with the handler provider registered
        // WebApplication puts an AuthorizationMiddleware in front of every request, before routing, where it can never
        // apply a route's policy: an async frame and ~2% of a small proxied request's CPU for nothing (docs/transport.md).
        services.RemoveAll<IAuthorizationHandlerProvider>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Yarp.ReverseProxy.Transforms.Builder.ITransformProvider, UpstreamTimingTransform>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Yarp.ReverseProxy.Transforms.Builder.ITransformProvider, TraceContextTransform>());
        services.AddZcLoadBalancing();
        // The loops' cached time (Transport/Loops/LoopClock), over the TimeProvider.System that AddReverseProxy registers.
        services.Replace(ServiceDescriptor.Singleton<TimeProvider>(LoopClock.Instance));
        services.TryAddSingleton<ProxyMetrics>();
        services.TryAddSingleton<RequestMetrics>();
        services.TryAddSingleton<UpstreamTimingStep>();
        services.TryAddSingleton<RequestBodyLimitStep>();
        services.TryAddSingleton<ConfigLifecycle>();
        services.TryAddSingleton(new RuntimeOptions(initialOptions));
        services.TryAddSingleton<LingeringCounts>(); // both transports' lingering closes
        services.TryAddSingleton<ConfigValidator>();
        services.TryAddSingleton<DiscoveryStatus>();
        services.AddDiskCacheChecks();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigCheck, AdminConfigCheck>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigCheck, AccessLogConfigCheck>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigCheck, TelemetryConfigCheck>());
        services.AddZeroCopyForwarder();
        services.AddResponseOutput();
        services.AddForwardingTransforms();
        services.AddStreamProxy();
        services.AddRateLimits();
        services.AddResponseCompressionStep();
        return services;
    }

    /// <summary>Validates a loaded configuration with a throw-away container (tests validate what they loaded).</summary>
    public static async Task<List<ConfigError>> ValidateAsync(LoadedConfig config)
    {
        await using var provider = ValidationServices(config.Options);
        return await provider.GetRequiredService<ConfigValidator>().ValidateAsync(config);
    }

    /// <summary>Reads and validates the configuration as `check` and the first start do, with a throw-away container.</summary>
    public static async Task<(LoadedConfig? Config, List<ConfigError> Errors)> LoadAndValidateAsync(string mainFile)
    {
        await using var provider = ValidationServices(new ZcProxyOptions());
        return await provider.GetRequiredService<ConfigValidator>().LoadAndValidateAsync(mainFile);
    }

    private static ServiceProvider ValidationServices(ZcProxyOptions options)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddZcProxyServices(options);
        return services.BuildServiceProvider();
    }

    public static void UseFileConfig(this IServiceCollection services, string mainFile, LoadedConfig initial)
    {
        services.AddSingleton(sp => new FileConfigProvider(mainFile, initial, sp.GetRequiredService<ConfigValidator>(),
            sp.GetRequiredService<ConfigLifecycle>(), sp.GetRequiredService<RuntimeOptions>(), sp.GetRequiredService<ILogger<FileConfigProvider>>()));
        services.AddSingleton<IProxyConfigProvider>(sp => sp.GetRequiredService<FileConfigProvider>());
        services.AddHostedService<ConfigWatcher>();
    }
}
