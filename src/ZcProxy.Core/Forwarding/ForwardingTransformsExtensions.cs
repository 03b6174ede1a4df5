using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ZcProxy.Core.Forwarding;

internal static class ForwardingTransformsExtensions
{
    /// <summary>
    /// The transforms every route gets, whatever its config says: they fix what both forwarders send, since both
    /// build requests and responses through the route's transforms.
    /// </summary>
    public static IServiceCollection AddForwardingTransforms(this IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<ITransformProvider, ConnectionOptionsTransforms>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<ITransformProvider, RawPathTransforms>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<ITransformProvider, XForwardedForAppend>());
        return services;
    }
}
