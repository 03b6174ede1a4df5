using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.RateLimiting;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// The route-specific steps (rate limit, compression, cache) run for a route whose Metadata asks for any of them, and
/// are skipped in one call for the others; a reloaded route (a new configuration object) is decided again.
/// </summary>
public class RouteStepsTests
{
    [Theory]
    [InlineData(RouteRateLimits.MetadataKey, "perClient", true)]
    [InlineData("Compression", "on", true)]
    [InlineData("Compression", "off", false)]
    [InlineData("Cache", "on", true)]
    [InlineData("Cache", "off", false)]
    [InlineData("Other", "on", false)]
    public void ARouteNeedsTheSteps_WhenItsMetadataAsksForOne(string key, string value, bool needed)
    {
        Assert.Equal(needed, RouteSteps.Needs(Route(new Dictionary<string, string> { [key] = value })));
    }

    [Fact]
    public void ARouteWithoutMetadata_NeedsNone()
    {
        Assert.False(RouteSteps.Needs(Route(null)));
    }

    [Fact]
    public async Task TheStepsRun_OnlyForRoutesThatAskForThem_AndTheRequestGoesOnEitherWay()
    {
        int stepRuns = 0, forwarded = 0;
        var proxy = new ProxyBranch(new ApplicationBuilder(new NoServices()));
        RouteSteps.Use(proxy, steps => steps.Use((context, next) =>
        {
            stepRuns++;
            return next(context);
        }));
        proxy.Run(_ =>
        {
            forwarded++;
            return Task.CompletedTask;
        });
        var pipeline = proxy.Build();

        var plain = Route(null);
        var compressed = Route(new Dictionary<string, string> { ["Compression"] = "on" });
        await pipeline(Context(plain));
        await pipeline(Context(plain));
        Assert.Equal(0, stepRuns);
        await pipeline(Context(compressed));
        Assert.Equal(1, stepRuns);
        await pipeline(Context(plain));
        Assert.Equal(1, stepRuns);
        // A reload makes a new RouteConfig for the same route id: decided again, not taken from the last one.
        await pipeline(Context(plain with { Metadata = new Dictionary<string, string> { ["Cache"] = "on" } }));
        Assert.Equal(2, stepRuns);
        Assert.Equal(5, forwarded);
    }

    private static RouteConfig Route(IReadOnlyDictionary<string, string>? metadata) => new() { RouteId = "r", ClusterId = "c", Metadata = metadata };

    private static DefaultHttpContext Context(RouteConfig route)
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IReverseProxyFeature>(new ProxyFeature(new RouteModel(route, new ClusterState("c"), HttpTransformer.Default)));
        return context;
    }

    private sealed class ProxyFeature(RouteModel route) : IReverseProxyFeature
    {
        public RouteModel Route => route;
        public ClusterModel Cluster { get; set; } = null!;
        public IReadOnlyList<DestinationState> AllDestinations => [];
        public IReadOnlyList<DestinationState> AvailableDestinations { get; set; } = [];
        public DestinationState? ProxiedDestination { get; set; }
    }

    private sealed class NoServices : IServiceProvider
    {
        public object? GetService(Type serviceType) => null;
    }
}
