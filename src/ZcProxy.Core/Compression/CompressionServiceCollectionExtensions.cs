using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Compression;

internal static class CompressionServiceCollectionExtensions
{
    /// <summary>The compression step of routes with "Compression": "on", and its config check.</summary>
    public static IServiceCollection AddResponseCompressionStep(this IServiceCollection services)
    {
        services.TryAddSingleton<CompressionStep>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigCheck, CompressionConfigCheck>());
        return services;
    }
}
