using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Prom = Prometheus;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Publishes .NET's own meters in /metrics through prometheus-net's meter adapter: the runtime ("System.Runtime":
/// GC, heap, thread pool, exceptions, JIT...) and this host's Kestrel ("Microsoft.AspNetCore.Server.Kestrel":
/// connections, queued connections, TLS handshakes). Names are the meter's and the instrument's joined with
/// underscores (<c>system_runtime_dotnet_gc_collections</c>, <c>microsoft_aspnetcore_server_kestrel_kestrel_active_connections</c>);
/// the adapter exposes .NET counters as gauges (a meter may be re-created and restart from zero).
/// Only this host's Kestrel meter is taken (by its IMeterFactory scope), so other servers in the same process
/// (demo or test origins) are not mixed in; ASP.NET Core's per-request hosting meter is left out on purpose:
/// zcproxy_request_duration_seconds measures requests by route and cluster.
/// </summary>
internal sealed class RuntimeMeters(ProxyMetrics metrics, IMeterFactory meterFactory) : IHostedService, IDisposable
{
    public const string RuntimeMeter = "System.Runtime";
    public const string KestrelMeter = "Microsoft.AspNetCore.Server.Kestrel";

    private IDisposable? _adapter;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _adapter = Prom.MeterAdapter.StartListening(new Prom.MeterAdapterOptions
        {
            Registry = metrics.Registry,
            MetricFactory = metrics.Factory,
            InstrumentFilterPredicate = Wanted,
            ResolveHistogramBuckets = _ => LatencyBuckets.Seconds,
            // The adapter forgets series not updated for this long (its maximum); these meters have few, long-lived
            // series. zcproxy_client_connections is the exact open-connection count, whatever happens here.
            MetricsExpireAfter = TimeSpan.FromDays(1),
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _adapter?.Dispose();
        _adapter = null;
    }

    private bool Wanted(Instrument instrument) => instrument.Meter.Name switch
    {
        RuntimeMeter => true,
        KestrelMeter => ReferenceEquals(instrument.Meter.Scope, meterFactory),
        _ => false,
    };
}

/// <summary>Histogram buckets for latencies in seconds: 1 ms to 60 s, roughly ×2.5 apart (as the Prometheus client defaults, extended).</summary>
internal static class LatencyBuckets
{
    public static readonly double[] Seconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
}
