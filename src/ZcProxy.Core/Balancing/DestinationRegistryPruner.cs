using Microsoft.Extensions.Hosting;
using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// After each applied reload, forgets the pool state of destinations the configuration no longer has, so that
/// metrics and status do not keep reporting them. State of destinations that stay (same cluster and destination
/// id) is kept: in-flight counts, queues, breakers and slow-start ramps carry over a reload.
/// </summary>
internal sealed class DestinationRegistryPruner(ConfigLifecycle lifecycle, IProxyConfigProvider config, DestinationRegistry pools) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifecycle.Reloaded += OnReloaded;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        lifecycle.Reloaded -= OnReloaded;
        return Task.CompletedTask;
    }

    private void OnReloaded(ConfigReloadOutcome outcome)
    {
        if (!outcome.Applied) return;
        var live = config.GetConfig().Clusters
            .SelectMany(c => (c.Destinations ?? new Dictionary<string, DestinationConfig>()).Keys.Select(d => (c.ClusterId, d)));
        pools.RetainOnly(live);
    }
}
