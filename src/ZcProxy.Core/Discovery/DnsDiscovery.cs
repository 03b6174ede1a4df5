using System.Globalization;
using System.Net;
using DnsClient;
using DnsClient.Protocol;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Discovery;

/// <summary>
/// A cluster's destinations from DNS, for operators without etcd: every Interval the name is resolved, SRV (targets'
/// addresses from the additional section or an A/AAAA query, SRV weight as Weight, a priority above the lowest as
/// Backup) or A/AAAA with the configured port, and the set replaces the cluster's previous DNS set. An answer,
/// even an empty one, applies; a failure (timeout, SERVFAIL) keeps the last set and marks the view stale.
/// </summary>
internal sealed partial class DnsDiscovery(
    IReadOnlyDictionary<string, DnsDiscoveryOptions> clusters,
    FileConfigProvider config,
    DiscoveryStatus status,
    TimeProvider time,
    ILogger<DnsDiscovery> logger) : BackgroundService
{
    public static string SourceOf(string clusterId) => $"dns:{clusterId}";

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var (clusterId, dns) in clusters) status.Register(SourceOf(clusterId), dns.Name);
        return base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(clusters.Select(c => ResolveLoopAsync(c.Key, c.Value, stoppingToken)));

    private async Task ResolveLoopAsync(string clusterId, DnsDiscoveryOptions dns, CancellationToken stoppingToken)
    {
        var source = SourceOf(clusterId);
        var options = dns.Server is { } server
            ? new LookupClientOptions(IPEndPoint.Parse(server) is { Port: 0 } ep ? new IPEndPoint(ep.Address, 53) : IPEndPoint.Parse(server))
            : new LookupClientOptions();
        options.UseCache = false; // the interval decides freshness
        options.Timeout = TimeSpan.FromSeconds(2);
        options.Retries = 1;
        options.ThrowDnsErrors = true;
        var client = new LookupClient(options);
        List<DiscoveredDestination>? last = null;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var destinations = await ResolveAsync(client, clusterId, dns, stoppingToken);
                status.MarkCurrent(source, destinations.Count);
                if (last is null || !SameSet(last, destinations))
                {
                    await config.UpdateDiscoveredAsync(source, destinations, []);
                    LogResolved(clusterId, dns.Name, destinations.Count);
                    last = destinations;
                }
            }
#pragma warning disable CA1031 // any failure (timeout, SERVFAIL, a library defect) keeps the last set: it must never stop the proxy
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
#pragma warning restore CA1031
            {
                bool wasCurrent = status.Get(source)?.Current == true;
                status.MarkStale(source, e.Message);
                if (wasCurrent || last is null) LogStale(clusterId, dns.Name, e.Message);
            }
            try { await Task.Delay(dns.Interval, time, stoppingToken); }
            catch (OperationCanceledException) { return; }
        }
    }

    private static async Task<List<DiscoveredDestination>> ResolveAsync(LookupClient client, string clusterId, DnsDiscoveryOptions dns, CancellationToken ct)
    {
        var found = new List<(IPAddress Address, int Port, int Weight, bool Backup)>();
        if (dns.Name.StartsWith('_'))
        {
            var response = await client.QueryAsync(dns.Name, QueryType.SRV, cancellationToken: ct);
            var srv = response.Answers.SrvRecords().ToList();
            int best = srv.Count == 0 ? 0 : srv.Min(r => r.Priority);
            foreach (var record in srv)
            {
                var target = record.Target.Value;
                var addresses = response.Additionals.OfType<AddressRecord>().Where(a => a.DomainName.Value == target).Select(a => a.Address).ToList();
                if (addresses.Count == 0) addresses = await AddressesAsync(client, target, ct);
                foreach (var address in addresses)
                    found.Add((address, record.Port, Math.Clamp((int)record.Weight, 1, DestinationBalancingSettings.MaxWeight), record.Priority > best));
            }
        }
        else
        {
            foreach (var address in await AddressesAsync(client, dns.Name, ct)) found.Add((address, dns.Port!.Value, 1, false));
        }
        return found.Distinct().Select(f =>
        {
            var host = f.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{f.Address}]" : f.Address.ToString();
            var metadata = new Dictionary<string, string> { [BalancingMetadataKeys.Weight] = f.Weight.ToString(CultureInfo.InvariantCulture) };
            if (f.Backup) metadata[BalancingMetadataKeys.Backup] = "true";
            return new DiscoveredDestination(clusterId, $"{host}:{f.Port}",
                new DestinationConfig { Address = $"{dns.Scheme}://{host}:{f.Port}/", Metadata = metadata }, $"dns {dns.Name}");
        }).ToList();
    }

    private static async Task<List<IPAddress>> AddressesAsync(LookupClient client, string name, CancellationToken ct)
    {
        var a = await client.QueryAsync(name, QueryType.A, cancellationToken: ct);
        var aaaa = await client.QueryAsync(name, QueryType.AAAA, cancellationToken: ct);
        return a.Answers.ARecords().Select(r => r.Address).Concat(aaaa.Answers.AaaaRecords().Select(r => r.Address)).ToList();
    }

    private static bool SameSet(List<DiscoveredDestination> a, List<DiscoveredDestination> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.DestinationId == p.Second.DestinationId && p.First.Config == p.Second.Config);

    [LoggerMessage(EventId = 63, Level = LogLevel.Information, Message = "discovery: DNS {Name} for cluster '{ClusterId}': {Count} destinations")]
    private partial void LogResolved(string clusterId, string name, int count);

    [LoggerMessage(EventId = 64, Level = LogLevel.Warning, Message = "discovery: DNS {Name} for cluster '{ClusterId}' failed ({Reason}): the last set stays in force (stale)")]
    private partial void LogStale(string clusterId, string name, string reason);
}
