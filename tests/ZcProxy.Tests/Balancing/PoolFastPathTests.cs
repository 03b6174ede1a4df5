using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Tests.Balancing;

/// <summary>
/// A request of a cluster that configures none of the pool's optional features, with every destination in rotation,
/// skips the pool steps; any other request goes through them.
/// </summary>
public class PoolFastPathTests
{
    private readonly DestinationRegistry _pools = new(TimeProvider.System, new ProxyMetrics(), NullLogger<DestinationRegistry>.Instance);
    private readonly LastPolicy _policy = new();
    private readonly PoolFastPath _fast;

    public PoolFastPathTests()
        => _fast = new PoolFastPath(_pools, new BackupDestinationsStep(_pools, NullLogger<BackupDestinationsStep>.Instance), [_policy]);

    [Fact]
    public async Task DefaultCluster_SkipsTheSteps_WithThePolicysPickAndThePoolState()
    {
        var feature = Feature(Cluster(), Destination("a"), Destination("b"));
        var context = Context(feature);

        Assert.Equal("tries", await Run(context));
        Assert.Equal("b", Assert.Single(feature.AvailableDestinations).DestinationId); // the policy's pick
        var pool = context.Find<BalancingRequestFeature>();
        Assert.NotNull(pool);
        Assert.Equal(["a", "b"], pool.Primaries.Select(d => d.DestinationId));
        Assert.Empty(pool.Backups);
        Assert.NotNull(pool.Plan); // the tries find the destinations' runtimes in it
    }

    [Fact]
    public async Task SessionAffinityBackupsOrPassiveHealth_GoThroughTheSteps()
    {
        var affinity = Cluster() with { SessionAffinity = new SessionAffinityConfig { Enabled = true, AffinityKeyName = "k" } };
        var passive = Cluster() with { HealthCheck = new HealthCheckConfig { Passive = new PassiveHealthCheckConfig { Enabled = true } } };
        Assert.Equal("steps", await Run(Context(Feature(affinity, Destination("a"), Destination("b")))));
        Assert.Equal("steps", await Run(Context(Feature(passive, Destination("a"), Destination("b")))));
        Assert.Equal("steps", await Run(Context(Feature(Cluster(), Destination("a"), Destination("b", backup: true)))));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task DestinationOutOfRotation_AfterFastRequests_SendsTheNextOneThroughTheSteps(bool drained)
    {
        var state = drained ? DestinationAdminState.Draining : DestinationAdminState.Disabled;
        var feature = Feature(Cluster(), Destination("a"), Destination("b"));
        Assert.Equal("tries", await Run(Context(feature)));

        _pools.Get("c", "a").SetAdminState(state);
        Assert.Equal("steps", await Run(Context(Feature(feature))));
        _pools.Get("c", "a").SetAdminState(DestinationAdminState.Enabled);
        Assert.Equal("tries", await Run(Context(Feature(feature))));
    }

    [Fact]
    public async Task OpenBreaker_SendsTheRequestThroughTheSteps()
    {
        var feature = Feature(Cluster(), Destination("a"), Destination("b"));
        Assert.Equal("tries", await Run(Context(feature)));

        var breaker = _pools.Get("c", "b").BreakerFor(ClusterBalancingSettings.Default, 2)!; // MaxFails 1: one failure opens it
        Assert.True(breaker.TryEnter(out bool trial));
        breaker.Record(failed: true, trial);
        Assert.Equal("steps", await Run(Context(Feature(feature))));
    }

    [Fact]
    public async Task StateDroppedByAReload_IsNotReadFromThePlan()
    {
        var feature = Feature(Cluster(), Destination("a"), Destination("b"));
        Assert.Equal("tries", await Run(Context(feature)));

        _pools.RetainOnly([]); // the reload dropped both; the runtime API then disables "a" in a new state object
        _pools.Get("c", "a").SetAdminState(DestinationAdminState.Disabled);
        Assert.Equal("steps", await Run(Context(Feature(feature))));
    }

    [Fact]
    public async Task NoAvailableDestination_GoesThroughTheSteps()
    {
        var feature = Feature(Cluster(), Destination("a"));
        feature.AvailableDestinations = [];
        Assert.Equal("steps", await Run(Context(feature)));
    }

    private async Task<string> Run(HttpContext context)
    {
        string? taken = null;
        await _fast.InvokeAsync(context, _ => { taken = "steps"; return Task.CompletedTask; }, _ => { taken = "tries"; return Task.CompletedTask; });
        return taken!;
    }

    private static ClusterConfig Cluster() => new() { ClusterId = "c" };

    private static DestinationState Destination(string id, bool backup = false) => new(id, new DestinationModel(new DestinationConfig
    {
        Address = "http://127.0.0.1:1/",
        Metadata = backup ? new Dictionary<string, string> { [BalancingMetadataKeys.Backup] = "true" } : null,
    }));

    private static ProxyFeature Feature(ClusterConfig config, params DestinationState[] destinations)
    {
        var model = new ClusterModel(config, new HttpMessageInvoker(new HttpClientHandler()));
        var route = new RouteModel(new RouteConfig { RouteId = "r", ClusterId = config.ClusterId }, new ClusterState(config.ClusterId), HttpTransformer.Default);
        return new ProxyFeature(route, model, destinations);
    }

    /// <summary>The same cluster and destinations for the next request (the candidates anew, as YARP's initializer sets them).</summary>
    private static ProxyFeature Feature(ProxyFeature previous) => new(previous.Route, previous.Cluster, previous.All);

    private static DefaultHttpContext Context(ProxyFeature feature)
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IReverseProxyFeature>(feature);
        return context;
    }

    private sealed class LastPolicy : ILoadBalancingPolicy
    {
        public string Name => LoadBalancingPolicies.PowerOfTwoChoices;
        public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
            => availableDestinations[^1];
    }

    private sealed class ProxyFeature(RouteModel route, ClusterModel cluster, DestinationState[] destinations) : IReverseProxyFeature
    {
        public DestinationState[] All => destinations;
        public RouteModel Route => route;
        public ClusterModel Cluster => cluster;
        public IReadOnlyList<DestinationState> AllDestinations => destinations;
        public IReadOnlyList<DestinationState> AvailableDestinations { get; set; } = destinations;
        public DestinationState? ProxiedDestination { get; set; }
    }
}
