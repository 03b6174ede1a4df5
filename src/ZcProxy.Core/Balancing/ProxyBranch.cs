using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// A pipeline builder that YARP's step extensions (which want the proxy's builder type) accept: a branch of the proxy
/// pipeline (<see cref="BalancingPipelineExtensions.UsePool"/>) or a test's pipeline of single steps.
/// </summary>
internal sealed class ProxyBranch(IApplicationBuilder inner) : IReverseProxyApplicationBuilder
{
    public IServiceProvider ApplicationServices { get => inner.ApplicationServices; set => inner.ApplicationServices = value; }
    public IDictionary<string, object?> Properties => inner.Properties;
    public Microsoft.AspNetCore.Http.Features.IFeatureCollection ServerFeatures => inner.ServerFeatures;
    public RequestDelegate Build() => inner.Build();
    public IApplicationBuilder New() => inner.New();
    public IApplicationBuilder Use(Func<RequestDelegate, RequestDelegate> middleware) { inner.Use(middleware); return this; }
}
