using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Transport.Http1;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// The own HTTP/1.1 layer's feature collection: YARP's route feature and the proxied path's own features in fields, and
/// an own feature the application replaces (a body wrapper) found in place of the exchange, by the host's HttpContext too.
/// </summary>
public class Http1ExchangeFeaturesTests
{
    [Fact]
    public void YarpsFeature_IsKeptInItsField_WithoutChangingRevision_AListedOneChangesIt()
    {
        IFeatureCollection features = new Http1Exchange<object>();
        int revision = features.Revision;

        var proxy = new ReverseProxyFeatureStub();
        features.Set<IReverseProxyFeature>(proxy);
        Assert.Equal(revision, features.Revision); // in no feature cache: ASP.NET's stay valid
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

    [Fact]
    public void ProxiedPathFeatures_AreKeptInFields_FoundEveryWay_AndForgottenByReset()
    {
        var exchange = new Http1Exchange<object>();
        IFeatureCollection features = exchange;
        var context = new DefaultHttpContext(features);
        var error = new ZeroCopyForwarderErrorFeature(ForwarderError.Request, null);
        var field = new ReceivedConnectionField(new StringValues("keep-alive, x"));
        var pool = new BalancingRequestFeature("c", new ClusterState("c"), ClusterBalancingSettings.Default, [], []);
        int revision = features.Revision;

        var requestFeature = context.Features.Get<IHttpRequestFeature>(); // as ASP.NET's HttpRequest caches it
        features.Set<IForwarderErrorFeature>(error);
        features[typeof(ReceivedConnectionField)] = field;
        context.Put(pool);

        // No feature cache holds these types: setting them leaves the caches valid (they would ask again otherwise).
        Assert.Equal(revision, features.Revision);
        Assert.Same(requestFeature, context.Features.Get<IHttpRequestFeature>());
        Assert.Same(error, context.Find<IForwarderErrorFeature>());
        Assert.Same(error, features.Get<IForwarderErrorFeature>());
        Assert.Same(error, features[typeof(IForwarderErrorFeature)]);
        Assert.Same(field, context.Find<ReceivedConnectionField>());
        Assert.Same(field, features.Get<ReceivedConnectionField>());
        Assert.Same(pool, context.Find<BalancingRequestFeature>());
        Assert.Same(pool, features[typeof(BalancingRequestFeature)]);

        // Absent is answered by the field: a request's own feature is never looked for on its connection (none here).
        features.Set<IForwarderErrorFeature>(null);
        Assert.Null(context.Find<IForwarderErrorFeature>());
        Assert.Null(features[typeof(IForwarderErrorFeature)]);

        exchange.Reset(); // back to the pool: the next request must not see this one's
        Assert.Null(context.Find<ReceivedConnectionField>());
        Assert.Null(context.Find<BalancingRequestFeature>());
    }

    [Fact]
    public async Task UpgradeFeature_IsTheExchange_AndNoRequestIsUpgradable()
    {
        var context = new DefaultHttpContext(new Http1Exchange<object>());
        var upgrade = context.Find<IHttpUpgradeFeature>(); // answered here: the request has no connection to ask

        Assert.NotNull(upgrade);
        Assert.False(upgrade.IsUpgradableRequest); // the parser hands upgrade heads to Kestrel
        Assert.Same(upgrade, context.Features.Get<IHttpUpgradeFeature>());
        await Assert.ThrowsAsync<InvalidOperationException>(upgrade.UpgradeAsync);
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
