using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Discovery;

/// <summary>
/// Keeps the destinations under {Prefix}clusters/ in step with etcd: reads the whole prefix, hands the set to the
/// config provider, then watches from the next revision and hands over every change (within milliseconds of the put).
/// A failure anywhere (connect, a watch that ends, a probe that gets no answer within RequestTimeout: a partition)
/// marks the view stale, keeps the last set in force, and reconnects with exponential backoff, trying the endpoints in turn.
/// </summary>
internal sealed partial class EtcdDiscovery(
    EtcdDiscoveryOptions options,
    FileConfigProvider config,
    DiscoveryStatus status,
    TimeProvider time,
    ILogger<EtcdDiscovery> logger,
    Action<IReadOnlyList<string>>? peersChanged = null) : BackgroundService
{
    public const string Source = "etcd";
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(100);

    private readonly Dictionary<string, byte[]> _kvs = new(StringComparer.Ordinal);
    private readonly HttpClient _http = new(new SocketsHttpHandler { ConnectTimeout = options.RequestTimeout, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1) })
    {
        Timeout = Timeout.InfiniteTimeSpan, // the watch is one endless response; requests get their own timeouts
    };

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        status.Register(Source, string.Join(",", options.Endpoints));
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = FirstBackoff;
        for (int attempt = 0; !stoppingToken.IsCancellationRequested; attempt++)
        {
            var gateway = new EtcdGateway(_http, new Uri(options.Endpoints[attempt % options.Endpoints.Count].TrimEnd('/') + "/"));
            try
            {
                await SyncAndWatchAsync(gateway, () => backoff = FirstBackoff, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // any failure (network, etcd, an unexpected answer) keeps the last set: it must never stop the proxy
            catch (Exception e)
#pragma warning restore CA1031
            {
                var wasCurrent = status.Get(Source)?.Current == true;
                var reason = e is OperationCanceledException ? $"no answer within {options.RequestTimeout.TotalSeconds:0.#}s" : e.Message;
                status.MarkStale(Source, $"{gateway.Endpoint}: {reason}");
                if (wasCurrent) LogStale(gateway.Endpoint, reason, _kvs.Count);
                else LogRetry(gateway.Endpoint, reason, backoff.TotalMilliseconds);
            }
            await Task.Delay(backoff, time, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, options.MaxBackoff.Ticks));
        }
    }

    private async Task SyncAndWatchAsync(EtcdGateway gateway, Action connected, CancellationToken stoppingToken)
    {
        long revision;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
        {
            timeout.CancelAfter(options.RequestTimeout);
            var (rev, kvs) = await gateway.RangeAsync(options.Prefix, timeout.Token);
            revision = rev;
            _kvs.Clear();
            foreach (var kv in kvs) _kvs[kv.Key] = kv.Value;
        }
        var wasStale = status.Get(Source)?.StaleSince is { } since ? since : (DateTimeOffset?)null;
        await PublishAsync();
        connected();
        LogSynced(gateway.Endpoint, _kvs.Count, revision, wasStale is { } s ? $"; stale since {s:O}" : "");

        using var watch = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var probe = ProbeUntilFailureAsync(gateway, watch);
        try
        {
            await foreach (var batch in gateway.WatchAsync(options.Prefix, revision + 1, watch.Token))
            {
                foreach (var (deleted, kv) in batch)
                {
                    if (deleted) _kvs.Remove(kv.Key);
                    else _kvs[kv.Key] = kv.Value;
                }
                await PublishAsync();
            }
        }
        catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested && probe.IsCompleted)
        {
            await probe; // the probe's failure is the reason
        }
        finally
        {
            await watch.CancelAsync();
            try { await probe; } catch (Exception) when (stoppingToken.IsCancellationRequested || watch.IsCancellationRequested) { }
        }
    }

    /// <summary>A watch over a partitioned network just goes quiet: ask etcd something every ProbeInterval, give up on silence.</summary>
    private async Task ProbeUntilFailureAsync(EtcdGateway gateway, CancellationTokenSource watch)
    {
        while (!watch.IsCancellationRequested)
        {
            await Task.Delay(options.ProbeInterval, time, watch.Token);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(watch.Token);
            timeout.CancelAfter(options.RequestTimeout);
            try
            {
                await gateway.ProbeAsync(options.Prefix, timeout.Token);
            }
            catch (Exception) when (!watch.IsCancellationRequested)
            {
                await watch.CancelAsync(); // ends the watch; the exception below becomes the logged reason
                throw;
            }
        }
    }

    private Task PublishAsync()
    {
        var destinations = new List<DiscoveredDestination>();
        var rejected = new List<DiscoveryRejection>();
        foreach (var (key, value) in _kvs)
        {
            if (EtcdLayout.Parse(options.Prefix, key, value) is not var (destination, rejection)) continue;
            if (destination is not null) destinations.Add(destination);
            if (rejection is not null) rejected.Add(rejection);
        }
        if (peersChanged is not null)
        {
            var peers = new List<string>();
            foreach (var (key, value) in _kvs)
            {
                if (EtcdLayout.ParsePeer(options.Prefix, key, value) is not var (address, problem)) continue;
                if (address is not null) peers.Add(address);
                else rejected.Add(new(EtcdLayout.Origin(key), problem!));
            }
            peersChanged(peers);
        }
        status.MarkCurrent(Source, destinations.Count + rejected.Count);
        return config.UpdateDiscoveredAsync(Source, destinations, rejected);
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 60, Level = LogLevel.Information, Message = "discovery: etcd {Endpoint}: {Keys} keys at revision {Revision}, watching{Recovered}")]
    private partial void LogSynced(Uri endpoint, int keys, long revision, string recovered);

    [LoggerMessage(EventId = 61, Level = LogLevel.Warning, Message = "discovery: etcd {Endpoint} lost ({Reason}): the last {Keys} keys stay in force (stale) while reconnecting")]
    private partial void LogStale(Uri endpoint, string reason, int keys);

    [LoggerMessage(EventId = 62, Level = LogLevel.Warning, Message = "discovery: etcd {Endpoint} unreachable ({Reason}); retrying in {BackoffMs} ms")]
    private partial void LogRetry(Uri endpoint, string reason, double backoffMs);
}
