using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Http1;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// The own HTTP/1.1 layer's feature collection: YARP's route feature in a field of its own, and an own feature the
/// application replaces (a body wrapper) found in place of the exchange, by the host's HttpContext too.
/// </summary>
public class Http1ExchangeFeaturesTests
{
    [Fact]
    public void YarpsFeature_IsKeptInItsField_AndChangesRevision()
    {
        IFeatureCollection features = new Http1Exchange<object>();
        int revision = features.Revision;

        var proxy = new ReverseProxyFeatureStub();
        features.Set<IReverseProxyFeature>(proxy);
        features.Set(new CacheStatusFeature("HIT"));

        Assert.NotEqual(revision, features.Revision);
        Assert.Same(proxy, features.Get<IReverseProxyFeature>());
        Assert.Same(proxy, features[typeof(IReverseProxyFeature)]);
        Assert.Equal("HIT", features.Get<CacheStatusFeature>()!.Status);
    }

    [Fact]
    public void ReplacingAspNetCoreFeature_ChangesRevision_AndTheContextSeesIt()
    {
        IFeatureCollection features = new Http1Exchange<object>();
        var context = new DefaultHttpContext(features);
        Assert.Same(features, context.Features.Get<IHttpResponseBodyFeature>()); // the exchange itself
        int revision = features.Revision;

        var replacement = new StreamResponseBodyFeature(Stream.Null);
        features.Set<IHttpResponseBodyFeature>(replacement);

        Assert.NotEqual(revision, features.Revision);
        Assert.Same(Stream.Null, context.Response.Body);
        Assert.Same(replacement, features.Get<IHttpResponseBodyFeature>());
    }

    [Fact]
    public void OwnFeatures_ThroughTheGenericGet_AreTheExchange_UntilOneIsReplaced()
    {
        var exchange = new Http1Exchange<object>();
        var features = exchange;
        // Get<T> answers these without a cast (Unsafe.As): each must be a type the exchange is.
        Assert.Same(exchange, features.Get<IHttpRequestFeature>());
        Assert.Same(exchange, features.Get<IHttpResponseBodyFeature>());
        Assert.Same(exchange, features.Get<IHttpResponseFeature>());
        Assert.Same(exchange, features.Get<IHttpRequestBodyDetectionFeature>());
        Assert.Same(exchange, features.Get<Microsoft.AspNetCore.Http.Features.IEndpointFeature>());
        Assert.Same(exchange, features.Get<Microsoft.AspNetCore.Http.Features.IRouteValuesFeature>());
        Assert.Same(exchange, features.Get<IHttpRequestLifetimeFeature>());
        Assert.Same(exchange, features.Get<IHttpConnectionFeature>());
        Assert.Same(exchange, features.Get<IHttpMaxRequestBodySizeFeature>());
        Assert.Null(features.Get<IReverseProxyFeature>());

        var replacement = new StreamResponseBodyFeature(Stream.Null);
        features.Set<IHttpResponseBodyFeature>(replacement);
        Assert.Same(replacement, features.Get<IHttpResponseBodyFeature>());
        Assert.Same(exchange, features.Get<IHttpRequestFeature>());
    }

    private sealed class ReverseProxyFeatureStub : IReverseProxyFeature
    {
        public RouteModel Route => throw new NotSupportedException();
        public ClusterModel Cluster { get; set; } = null!;
        public IReadOnlyList<DestinationState> AllDestinations => [];
        public IReadOnlyList<DestinationState> AvailableDestinations { get; set; } = [];
        public DestinationState? ProxiedDestination { get; set; }
    }
}
