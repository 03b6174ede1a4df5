using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// A request transform on every route: YARP's forwarder writes the trace context through <see cref="TraceContext"/>, as
/// the zero-copy forwarder does (it runs after YARP has copied the client's headers). <see cref="DefaultRequestHead"/>
/// writes the same fields on the zero-copy fast path, so it counts among the <see cref="DefaultTransforms"/>.
/// </summary>
internal sealed class TraceContextTransform : ITransformProvider
{
    public void ValidateRoute(TransformRouteValidationContext context) { }

    public void ValidateCluster(TransformClusterValidationContext context) { }

    public void Apply(TransformBuilderContext context) => context.AddRequestTransform(static transform =>
    {
        TraceContext.Propagate(transform.ProxyRequest);
        return ValueTask.CompletedTask;
    });
}
