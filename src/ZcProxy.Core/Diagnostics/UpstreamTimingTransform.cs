using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// A request transform on every route: hands the request's <see cref="UpstreamTiming"/> to the outgoing
/// HttpRequestMessage, where <see cref="UpstreamTimingHandler"/> (inside YARP's HttpClient) finds it.
/// </summary>
internal sealed class UpstreamTimingTransform : ITransformProvider
{
    public void ValidateRoute(TransformRouteValidationContext context) { }

    public void ValidateCluster(TransformClusterValidationContext context) { }

    public void Apply(TransformBuilderContext context) => context.AddRequestTransform(static transform =>
    {
        if (transform.HttpContext.Features.Get<UpstreamTiming>() is { } timing)
            transform.ProxyRequest.Options.Set(UpstreamTiming.OptionKey, timing);
        return ValueTask.CompletedTask;
    });
}
