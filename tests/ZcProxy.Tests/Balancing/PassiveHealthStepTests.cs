using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Tests.Balancing;

/// <summary>YARP's passive health step runs only for clusters that enable it, and runs as YARP's for those.</summary>
public class PassiveHealthStepTests
{
    [Fact]
    public async Task ClusterWithPassiveHealth_ReportsEveryProxiedRequestToItsPolicy()
    {
        var policy = new CountingPolicy();
        var (pipeline, tryEnds) = Pipeline(policy);
        var context = Context(passive: true);

        var request = pipeline(context);
        Assert.NotSame(tryEnds.Task, request); // YARP's middleware is a frame around the try
        tryEnds.SetResult();
        await request;
        Assert.Equal(1, policy.Proxied);
    }

    [Fact]
    public async Task ClusterWithoutPassiveHealth_GoesStraightToTheTry()
    {
        var policy = new CountingPolicy();
        var (pipeline, tryEnds) = Pipeline(policy);

        var request = pipeline(Context(passive: false));
        Assert.Same(tryEnds.Task, request); // no frame of its own around the try
        tryEnds.SetResult();
        await request;
        Assert.Equal(0, policy.Proxied);
    }

    private static (RequestDelegate Pipeline, TaskCompletionSource TryEnds) Pipeline(CountingPolicy policy)
    {
        var services = new ServiceCollection().AddSingleton<IPassiveHealthCheckPolicy>(policy).BuildServiceProvider();
        var proxy = new ProxyBranch(new ApplicationBuilder(services));
        proxy.UsePassiveHealthChecksWhereEnabled();
        var tryEnds = new TaskCompletionSource();
        proxy.Run(_ => tryEnds.Task);
        return (proxy.Build(), tryEnds);
    }

    private static DefaultHttpContext Context(bool passive)
    {
        var config = new ClusterConfig
        {
            ClusterId = "c",
            HealthCheck = passive ? new HealthCheckConfig { Passive = new PassiveHealthCheckConfig { Enabled = true } } : null,
        };
        var model = new ClusterModel(config, new HttpMessageInvoker(new HttpClientHandler()));
        var route = new RouteModel(new RouteConfig { RouteId = "r", ClusterId = "c" }, new ClusterState("c"), HttpTransformer.Default);
        var context = new DefaultHttpContext();
        var destination = new DestinationState("d", new DestinationModel(new DestinationConfig { Address = "http://127.0.0.1:1/" }));
        context.Features.Set<IReverseProxyFeature>(new ProxyFeature(route, model, destination));
        return context;
    }

    private sealed class CountingPolicy : IPassiveHealthCheckPolicy
    {
        public int Proxied;
        public string Name => HealthCheckConstants.PassivePolicy.TransportFailureRate;
        public void RequestProxied(HttpContext context, ClusterState cluster, DestinationState destination) => Proxied++;
    }

    private sealed class ProxyFeature(RouteModel route, ClusterModel cluster, DestinationState destination) : IReverseProxyFeature
    {
        public RouteModel Route => route;
        public ClusterModel Cluster => cluster;
        private readonly DestinationState[] _destinations = [destination];
        public IReadOnlyList<DestinationState> AllDestinations => _destinations;
        public IReadOnlyList<DestinationState> AvailableDestinations { get; set; } = [];
        public DestinationState? ProxiedDestination { get; set; } = destination;
    }
}
