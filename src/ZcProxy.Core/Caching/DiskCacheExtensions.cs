using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using ZcProxy.Core.Caching.Peers;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Caching;

/// <summary>The cache's one registration place: services, the proxy-pipeline step, the admin purge endpoint.</summary>
internal static class DiskCacheExtensions
{
    /// <summary>Registers the cache for a configured Cache section (Path already resolved against the main file).</summary>
    public static IServiceCollection AddDiskCache(this IServiceCollection services, CacheOptions options)
    {
        services.TryAddSingleton<CacheIndex>();
        services.TryAddSingleton<CacheLock>();
        services.TryAddSingleton<CacheMetrics>();
        services.TryAddSingleton(sp => ActivatorUtilities.CreateInstance<DiskCache>(sp, options));
        services.TryAddSingleton<CachedResponseWriter>();
        services.TryAddSingleton<CachePeers>();
        services.TryAddSingleton<PeerForwarder>();
        services.TryAddSingleton<CacheStep>();
        services.AddHostedService<DiskCacheMaintenance>();
        return services;
    }

    /// <summary>Registers the Cache section's validation (also for `check`, where no cache is opened).</summary>
    public static IServiceCollection AddDiskCacheChecks(this IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigCheck, CacheConfigCheck>());
        return services;
    }

    /// <summary>The cache step; a no-op when no Cache section was configured at start.</summary>
    public static IApplicationBuilder UseDiskCache(this IApplicationBuilder proxy)
    {
        var step = proxy.ApplicationServices.GetService<CacheStep>();
        return step is null ? proxy : proxy.Use(step.InvokeAsync);
    }

    /// <summary>
    /// Purge through the admin listener: <c>DELETE {pattern}?url=http://host/path</c> removes every variant of one URL's
    /// key (the URL as clients send it, percent-encodings kept: see <see cref="CacheKey.ForUrl"/>); <c>DELETE {pattern}?prefix=http://host/images/</c> every key starting with the prefix. PURGE and POST work too.
    /// </summary>
    public static IEndpointConventionBuilder MapCachePurge(this IEndpointRouteBuilder endpoints, string pattern)
        => endpoints.MapMethods(pattern, ["DELETE", "PURGE", "POST"], (HttpRequest request) =>
        {
            if (request.HttpContext.RequestServices.GetService<DiskCache>() is not { } cache)
                return Results.Text("no Cache section is configured\n", statusCode: StatusCodes.Status404NotFound);
            var url = request.Query["url"].ToString();
            var prefix = request.Query["prefix"].ToString();
            int purged;
            if (url.Length > 0)
            {
                if (CacheKey.ForUrl(cache.Options.Key, url) is not { } key) return Results.Text("url must be absolute (http://host/path)\n", statusCode: 400);
                purged = cache.Invalidate(key);
            }
            else if (prefix.Length > 0) purged = cache.PurgePrefix(prefix);
            else return Results.Text("give ?url=ABSOLUTE_URL or ?prefix=KEY_PREFIX\n", statusCode: 400);
            return Results.Json(new { purged });
        });
}
