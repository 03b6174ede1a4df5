using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy.Transforms.Builder;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// Whether a route's transforms are exactly the defaults: YARP's (request headers copied, the original Host
/// replaced by the destination's, X-Forwarded-Host/Proto/Prefix set, Forwarded removed, response headers copied
/// without the hop-by-hop ones) plus ZcProxy's own on every route (<see cref="ConnectionOptionsTransforms"/>,
/// <see cref="RawPathTransforms"/>, <see cref="UpstreamTimingTransform"/>, <see cref="TraceContextTransform"/>,
/// <see cref="XForwardedForAppend"/>: X-Forwarded-For appended to). For such routes the zero-copy forwarder
/// writes heads straight from and to Kestrel's (<see cref="DefaultRequestHead"/>, <see cref="DefaultResponseHead"/>)
/// instead of running the transforms over HttpRequestMessage/HttpResponseMessage copies. A route with transforms of
/// its own, a cluster with session affinity (YARP's affinity provider adds a response transform that sets the
/// cookie), or any transform provider this class does not know keeps the transform path.
/// </summary>
internal sealed class DefaultTransforms(IEnumerable<ITransformProvider> providers)
{
    private const string YarpAffinityProvider = "Yarp.ReverseProxy.SessionAffinity.AffinitizeTransformProvider";

    private readonly bool _providersKnown = providers.All(p => p is ConnectionOptionsTransforms or RawPathTransforms or UpstreamTimingTransform or TraceContextTransform or XForwardedForAppend
        || p.GetType().FullName == YarpAffinityProvider);

    public bool AreDefault(RouteModel route, ClusterModel? cluster)
        => _providersKnown && route.Config.Transforms is null or { Count: 0 } && cluster?.Config.SessionAffinity?.Enabled != true;
}
