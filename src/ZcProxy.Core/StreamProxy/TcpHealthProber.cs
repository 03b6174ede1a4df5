using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.StreamProxy;

/// <summary>
/// Active health checks of stream clusters: a TCP connect to each destination (HAProxy's <c>check</c> in TCP mode),
/// since YARP's own checks are HTTP requests (<see cref="StreamClusters.ForYarp"/> keeps YARP from sending them).
/// Configured with YARP's schema (<c>HealthCheck.Active</c>: Enabled, Interval, Timeout) and judged like YARP's
/// ConsecutiveFailures policy (unhealthy after <c>ConsecutiveFailuresHealthPolicy.Threshold</c> failed connects in a
/// row, default 2; healthy again at the first success); the result goes into YARP's destination state through
/// <see cref="IDestinationHealthUpdater"/>, where the stream balancer, /status and the metrics read it.
/// </summary>
internal sealed partial class TcpHealthProber(IServiceProvider services, IProxyStateLookup state, IDestinationHealthUpdater updater,
    IOptions<ActiveHealthCheckMonitorOptions> monitorOptions, IOptions<ConsecutiveFailuresHealthPolicyOptions> policyOptions,
    TimeProvider time, ILogger<TcpHealthProber> logger) : BackgroundService
{
    private const string ThresholdKey = "ConsecutiveFailuresHealthPolicy.Threshold";
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(100);
    /// <summary>
    /// The tick while the configuration has no streams: nothing to probe, so one look a second for a reload that adds
    /// some. Ticking every 100 ms regardless woke a pool thread and the timer thread 10 times a second on every proxy
    /// (0.5 % of the CPU of resident 16 MiB cache hits in perf, issue 14; nginx costs nothing while idle).
    /// </summary>
    private static readonly TimeSpan IdleTick = TimeSpan.FromSeconds(1);
    private readonly ConditionalWeakTable<DestinationState, StrongBox<int>> _failures = new();
    private readonly Dictionary<string, (long Due, Task Probe)> _clusters = new(StringComparer.OrdinalIgnoreCase);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Only the running proxy has a config provider (`check` builds the same services but starts none of them).
        if (services.GetService<FileConfigProvider>() is not { } config) return;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var current = config.Current;
                RunDueProbes(current, stoppingToken);
                await Task.Delay(current.Options.Streams.Count == 0 && _clusters.Count == 0 ? IdleTick : Tick, time, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
        foreach (var (_, probe) in _clusters.Values)
        {
            try { await probe; } catch (OperationCanceledException) { }
        }
    }

    private void RunDueProbes(LoadedConfig config, CancellationToken stoppingToken)
    {
        var streamClusters = StreamClusters.Named(config.Options);
        long now = time.GetTimestamp();
        foreach (var cluster in config.Clusters)
        {
            if (!streamClusters.Contains(cluster.ClusterId) || !state.TryGetCluster(cluster.ClusterId, out var clusterState)) continue;
            if (cluster.HealthCheck?.Active is not { Enabled: true } active)
            {
                ForgetHealth(clusterState);
                continue;
            }
            if (_clusters.TryGetValue(cluster.ClusterId, out var running) && (now < running.Due || !running.Probe.IsCompleted)) continue;
            var interval = active.Interval ?? monitorOptions.Value.DefaultInterval;
            var timeout = active.Timeout ?? monitorOptions.Value.DefaultTimeout;
            _clusters[cluster.ClusterId] = (now + (long)(interval.TotalSeconds * time.TimestampFrequency), ProbeAsync(cluster, clusterState, timeout, stoppingToken));
        }
    }

    private async Task ProbeAsync(ClusterConfig cluster, ClusterState clusterState, TimeSpan timeout, CancellationToken stoppingToken)
    {
        double threshold = cluster.Metadata?.TryGetValue(ThresholdKey, out var text) == true
            && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var configured) && configured > 0 ? configured : policyOptions.Value.DefaultThreshold;
        var destinations = clusterState.DestinationsState.AllDestinations;
        var results = await Task.WhenAll(destinations.Select(d => ConnectsAsync(d, timeout, stoppingToken)));
        var updates = new List<NewActiveDestinationHealth>(destinations.Count);
        for (int i = 0; i < destinations.Count; i++)
        {
            var destination = destinations[i];
            var failures = _failures.GetOrCreateValue(destination);
            var (connected, reason) = results[i];
            failures.Value = connected ? 0 : failures.Value + 1;
            var health = failures.Value < threshold ? DestinationHealth.Healthy : DestinationHealth.Unhealthy;
            if (health != destination.Health.Active)
            {
                if (health == DestinationHealth.Unhealthy) LogUnhealthy(logger, cluster.ClusterId, destination.DestinationId, failures.Value, reason);
                else if (destination.Health.Active == DestinationHealth.Unhealthy) LogHealthy(logger, cluster.ClusterId, destination.DestinationId);
            }
            updates.Add(new NewActiveDestinationHealth(destination, health));
        }
        if (!stoppingToken.IsCancellationRequested) updater.SetActive(clusterState, updates);
    }

    /// <summary>Connects to the destination and closes at once (FIN); a refused, unreachable or slow connect is a failure.</summary>
    private static async Task<(bool Connected, string Reason)> ConnectsAsync(DestinationState destination, TimeSpan timeout, CancellationToken stoppingToken)
    {
        if (!TcpDestination.TryParse(destination.Model?.Config.Address, out var address)) return (false, "not a tcp:// address");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        deadline.CancelAfter(timeout);
        try
        {
            string failure = "the name does not resolve";
            foreach (var ip in await address!.ResolveAsync(deadline.Token))
            {
                using var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(ip, address.Port), deadline.Token);
                    return (true, "");
                }
                catch (SocketException e) { failure = e.SocketErrorCode.ToString(); }
            }
            return (false, $"{address}: {failure}");
        }
        catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested) { return (false, $"{address}: no connection within {timeout.TotalMilliseconds:0} ms"); }
        catch (SocketException e) { return (false, $"{address}: {e.SocketErrorCode}"); }
    }

    /// <summary>A cluster whose active checks were turned off: its destinations' last verdict no longer counts.</summary>
    private void ForgetHealth(ClusterState clusterState)
    {
        var stale = clusterState.DestinationsState.AllDestinations.Where(d => d.Health.Active != DestinationHealth.Unknown).ToList();
        if (stale.Count == 0) return;
        foreach (var d in stale) _failures.Remove(d);
        updater.SetActive(clusterState, stale.Select(d => new NewActiveDestinationHealth(d, DestinationHealth.Unknown)));
    }

    [LoggerMessage(EventId = 9020, Level = LogLevel.Warning, Message = "cluster '{ClusterId}': destination '{DestinationId}' is unhealthy: {Failures} TCP health checks in a row failed (last: {Reason})")]
    private static partial void LogUnhealthy(ILogger logger, string clusterId, string destinationId, int failures, string reason);

    [LoggerMessage(EventId = 9021, Level = LogLevel.Information, Message = "cluster '{ClusterId}': destination '{DestinationId}' passed its TCP health check: healthy again")]
    private static partial void LogHealthy(ILogger logger, string clusterId, string destinationId);
}
