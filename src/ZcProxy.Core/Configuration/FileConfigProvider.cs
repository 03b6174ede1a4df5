using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Discovery;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// YARP's config source: the main file and its includes, plus the destinations discovery sources announce. A reload
/// reads and validates everything first; only a fully valid configuration replaces the running one, so a broken edit
/// never takes the proxy down. Discovered destinations are merged into the files' clusters by <see cref="DestinationMerge"/>
/// on every change of either side.
/// </summary>
internal sealed partial class FileConfigProvider : IProxyConfigProvider, IDisposable
{
    private readonly ConfigValidator _validator;
    private readonly ConfigLifecycle _lifecycle;
    private readonly RuntimeOptions _runtime;
    private readonly ILogger<FileConfigProvider> _logger;
    private readonly SemaphoreSlim _reloadGate = new(1, 1);
    private volatile ProxyConfigSnapshot _snapshot;
    private volatile LoadedConfig _loaded;
    private LoadedConfig _files;
    private readonly Dictionary<string, (IReadOnlyList<DiscoveredDestination> Destinations, IReadOnlyList<DiscoveryRejection> Rejected)> _discovered =
        new(StringComparer.Ordinal);
    private HashSet<string> _loggedRejections = [];

    public FileConfigProvider(string mainFile, LoadedConfig initial, ConfigValidator validator, ConfigLifecycle lifecycle,
        RuntimeOptions runtime, ILogger<FileConfigProvider> logger)
    {
        MainFile = Path.GetFullPath(mainFile);
        _validator = validator;
        _lifecycle = lifecycle;
        _runtime = runtime;
        _logger = logger;
        _loaded = initial;
        _files = initial;
        _snapshot = new ProxyConfigSnapshot(initial.Routes, StreamClusters.ForYarp(initial));
    }

    /// <summary>Discovered entries not served, by source, as of the last merge.</summary>
    public IReadOnlyDictionary<string, int> RejectedBySource { get; private set; } = new Dictionary<string, int>();

    public string MainFile { get; }

    /// <summary>The configuration in force (last good one).</summary>
    public LoadedConfig Current => _loaded;

    public IProxyConfig GetConfig() => _snapshot;

    public async Task<ConfigReloadOutcome> ReloadAsync(string reason)
    {
        await _reloadGate.WaitAsync();
        try
        {
            _lifecycle.OnReloading();
            // Never throws: whatever happens, the attempt ends with OnReloaded (systemd's READY=1 after RELOADING=1).
            var (next, errors) = await _validator.LoadAndValidateAsync(MainFile);

            ConfigReloadOutcome outcome;
            if (next is null)
            {
                foreach (var error in errors) LogRejected(reason, error.ToString());
                outcome = new ConfigReloadOutcome(false, _loaded.Routes.Count, _loaded.Clusters.Count, errors.Select(e => e.ToString()).ToList());
            }
            else
            {
                WarnAboutRestartOnlySettings(_loaded.Options, next.Options);
                _files = next;
                await PublishAsync();
                _runtime.Update(KeepRestartOnlyValues(_runtime.Current, next.Options));
                LogReloaded(next.Routes.Count, next.Clusters.Count, reason);
                outcome = new ConfigReloadOutcome(true, next.Routes.Count, next.Clusters.Count, []);
            }
            _lifecycle.OnReloaded(outcome);
            return outcome;
        }
        finally
        {
            _reloadGate.Release();
        }
    }

    /// <summary>
    /// A discovery source's whole current set (and the entries it could not parse): merged with the files' clusters,
    /// validated, applied. Problems are logged once each, not on every change.
    /// </summary>
    public async Task UpdateDiscoveredAsync(string source, IReadOnlyList<DiscoveredDestination> destinations, IReadOnlyList<DiscoveryRejection> rejected)
    {
        await _reloadGate.WaitAsync();
        try
        {
            _discovered[source] = (destinations, rejected);
            await PublishAsync();
        }
        finally
        {
            _reloadGate.Release();
        }
    }

    /// <summary>Merges files and discovered destinations into the snapshot YARP serves; call under the reload gate.</summary>
    private async Task PublishAsync()
    {
        var all = _discovered.Values.SelectMany(d => d.Destinations).ToList();
        LoadedConfig merged;
        List<DiscoveryRejection> rejected;
        try
        {
            (merged, rejected) = await DestinationMerge.MergeAsync(_files, all, _validator);
        }
#pragma warning disable CA1031 // a defect in merging must not end a reload without READY=1: the files' destinations serve alone
        catch (Exception e)
#pragma warning restore CA1031
        {
            (merged, rejected) = (_files, all.Select(d => new DiscoveryRejection(d.Origin, $"internal error while merging ({e.GetType().Name}: {e.Message})")).ToList());
        }
        rejected.AddRange(_discovered.Values.SelectMany(d => d.Rejected));
        var logged = new HashSet<string>(StringComparer.Ordinal);
        foreach (var rejection in rejected)
        {
            var line = rejection.ToString();
            if (logged.Add(line) && !_loggedRejections.Contains(line)) LogDiscoveryRejected(line);
        }
        _loggedRejections = logged;
        RejectedBySource = rejected.GroupBy(r => r.Origin.Split(' ')[0]).ToDictionary(g => g.Key, g => g.Count());

        var previous = _snapshot;
        _loaded = merged;
        _snapshot = new ProxyConfigSnapshot(merged.Routes, StreamClusters.ForYarp(merged));
        previous.SignalReplaced();
    }

    public void Dispose() => _reloadGate.Dispose();

    /// <summary>Settings bound into the running listeners keep their start-up value until a restart (the warning says so).</summary>
    private static ZcProxyOptions KeepRestartOnlyValues(ZcProxyOptions running, ZcProxyOptions next) =>
        next.ZeroCopy.Enabled == running.ZeroCopy.Enabled ? next : next with { ZeroCopy = next.ZeroCopy with { Enabled = running.ZeroCopy.Enabled } };

    private void WarnAboutRestartOnlySettings(ZcProxyOptions before, ZcProxyOptions after)
    {
        if (!before.Listen.Select(l => l.Url).SequenceEqual(after.Listen.Select(l => l.Url)))
            LogNeedsRestart("Listen", string.Join(", ", after.Listen.Select(l => l.Url)));
        if (before.Admin?.Url != after.Admin?.Url)
            LogNeedsRestart("Admin", after.Admin?.Url ?? "(none)");
        // The zero-copy transport is wired into the listeners at start: Enabled stays as it was (KeepRestartOnlyValues).
        if (before.ZeroCopy.Enabled != after.ZeroCopy.Enabled)
            LogNeedsRestart("ZeroCopy.Enabled", after.ZeroCopy.Enabled ? "true" : "false");
        // So is the choice of HTTP/1.1 layer on those listeners (own or Kestrel's).
        if (before.ZeroCopy.Http1 != after.ZeroCopy.Http1)
            LogNeedsRestart("ZeroCopy.Http1", after.ZeroCopy.Http1);
        // The relay pipe pool is sized once (its pipes are reused); new relays keep the start-up size.
        if (before.ZeroCopy.RelayPipeSize != after.ZeroCopy.RelayPipeSize)
            LogNeedsRestart("ZeroCopy.RelayPipeSize", after.ZeroCopy.RelayPipeSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (before.ZeroCopy.RelayPipeGrowSize != after.ZeroCopy.RelayPipeGrowSize)
            LogNeedsRestart("ZeroCopy.RelayPipeGrowSize", after.ZeroCopy.RelayPipeGrowSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (before.Discovery != after.Discovery && !SameDiscovery(before.Discovery, after.Discovery))
            LogNeedsRestart("Discovery", "changed");
        if (before.Cache?.Path != after.Cache?.Path)
            LogNeedsRestart("Cache.Path", after.Cache?.Path ?? "(none)");
        if (before.Demo != after.Demo && !(before.Demo?.Origins.SequenceEqual(after.Demo?.Origins ?? []) ?? after.Demo is null))
            LogNeedsRestart("Demo", "changed");
        // Kestrel's limits and the host's shutdown timeout are set up once, at start (the access log follows reloads).
        // MaxConnectionsPerClient is read per connection, the lingering settings per close: they apply at once.
        if (ForRestart(before.Limits) != ForRestart(after.Limits))
            LogNeedsRestart("Limits", DescribeLimits(after.Limits));
        // The OpenTelemetry SDK's providers and exporters are built with the host.
        if (!Diagnostics.OtlpExport.SameSettings(before.Telemetry?.Otlp, after.Telemetry?.Otlp))
            LogNeedsRestart("Telemetry", after.Telemetry?.Otlp is { } otlp ? $"OTLP {otlp.Protocol} to {otlp.Endpoint}" : "(none)");
        if (before.DrainTimeout != after.DrainTimeout)
            LogNeedsRestart("DrainTimeout", after.DrainTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture));
    }

    private static ClientLimits ForRestart(ClientLimits l)
        => l with { MaxConnectionsPerClient = 0, LingeringClose = ClientLimits.LingeringOn, LingeringTime = default, LingeringTimeout = default };

    private static bool SameDiscovery(DiscoveryOptions? a, DiscoveryOptions? b) =>
        (a?.Etcd, b?.Etcd) is (null, null)
        || (a?.Etcd is { } x && b?.Etcd is { } y && x with { Endpoints = [] } == y with { Endpoints = [] } && x.Endpoints.SequenceEqual(y.Endpoints));

    private static string DescribeLimits(ClientLimits l) =>
        $"MaxRequestBodySize {ByteSize.Format(l.MaxRequestBodySize)}, MaxRequestHeadersSize {ByteSize.Format(l.MaxRequestHeadersSize)}, " +
        $"KeepAliveTimeout {l.KeepAliveTimeout:c}, RequestHeadersTimeout {l.RequestHeadersTimeout:c}, MaxConnections {l.MaxConnections}";

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "configuration reloaded: {Routes} routes, {Clusters} clusters ({Reason})")]
    private partial void LogReloaded(int routes, int clusters, string reason);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "configuration rejected ({Reason}), the running configuration stays in force: {Error}")]
    private partial void LogRejected(string reason, string error);

    [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "discovery: not served: {Rejection}")]
    private partial void LogDiscoveryRejected(string rejection);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "'{Setting}' changed to {Value}: this takes effect only after a restart; the running process keeps the old value")]
    private partial void LogNeedsRestart(string setting, string value);
}
