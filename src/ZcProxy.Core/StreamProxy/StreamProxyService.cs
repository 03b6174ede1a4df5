using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Transport.Relay;

namespace ZcProxy.Core.StreamProxy;

/// <summary>
/// Runs the <c>Streams</c> section: one <see cref="StreamListener"/> per stream, changed with every applied reload like
/// routes are. A stream added starts listening; one removed stops listening while its connections finish (or hit their
/// idle timeout); a changed Listen address moves the listener; other changes apply to the next connections. Streams
/// not changed are not touched, nor are their connections. At start a stream that cannot listen stops the start; on a
/// reload it is logged and left out (the next reload tries again). At shutdown the listeners close, connections get the
/// drain time to finish, and what is left is stopped.
/// </summary>
internal sealed partial class StreamProxyService : IHostedService, IDisposable
{
    private readonly IServiceProvider _services;
    private readonly RuntimeOptions _options;
    private readonly ConfigLifecycle _lifecycle;
    private readonly ILogger<StreamProxyService> _log;
    private readonly Dictionary<string, StreamListener> _listeners = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<StreamSession, byte> _sessions = new();
    private readonly SemaphoreSlim _applying = new(1, 1);
    private readonly CancellationTokenSource _abort = new();
    private readonly Lazy<EventLoops> _loops;
    private readonly Lazy<AccessLogWriter?> _accessLog;

    public StreamProxyService(IServiceProvider services, RuntimeOptions options, ConfigLifecycle lifecycle, StreamBalancer balancer, StreamMetrics metrics,
        ProxyMetrics proxyMetrics, RelayIdleSweeper sweeper, ILogger<StreamProxyService> log, ILogger<LoopListener> listenerLog)
    {
        _services = services;
        _options = options;
        _lifecycle = lifecycle;
        _log = log;
        Balancer = balancer;
        Metrics = metrics;
        ProxyMetrics = proxyMetrics;
        Sweeper = sweeper;
        ListenerLog = listenerLog;
        // The loops and the pipe pool start only when a stream needs them.
        _loops = new(() => services.GetRequiredService<EventLoops>());
        _accessLog = new(() => services.GetService<AccessLogWriter>() is { Enabled: true } writer ? writer : null);
    }

    public StreamBalancer Balancer { get; }
    public StreamMetrics Metrics { get; }
    public ProxyMetrics ProxyMetrics { get; }
    public RelayIdleSweeper Sweeper { get; }
    internal ILogger ListenerLog { get; }
    public EventLoops Loops => _loops.Value;
    /// <summary>ZeroCopy.RelaySendLowWatermark as it is now (a reload applies to the relays that start after it).</summary>
    public long RelaySendLowWatermark => _options.Current.ZeroCopy.RelaySendLowWatermark;
    public SplicePipePool Pipes => _services.GetRequiredKeyedService<SplicePipePool>(ZeroCopyTransportExtensions.RelayPipesKey);

    /// <summary>Connections open right now, all streams (for tests and leak checks).</summary>
    public int OpenConnections => _sessions.Count;

    /// <summary>The address a stream listens on now (port 0 resolved), or null when it does not listen.</summary>
    public IPEndPoint? EndPointOf(string stream)
    {
        lock (_listeners) return _listeners.TryGetValue(stream, out var listener) ? listener.LocalEndPoint : null;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await ApplyAsync(_options.Current.Streams, starting: true);
        _lifecycle.Reloaded += OnReloaded;
    }

    private void OnReloaded(ConfigReloadOutcome outcome)
    {
        if (outcome.Applied) _ = ApplyAsync(_options.Current.Streams, starting: false);
    }

    private async Task ApplyAsync(IReadOnlyDictionary<string, StreamOptions> streams, bool starting)
    {
        await _applying.WaitAsync();
        try
        {
            List<StreamListener> stopping = [];
            lock (_listeners)
            {
                // Removed streams and moved listeners first: a new listener may take the address an old one leaves.
                foreach (var (name, listener) in _listeners.ToList())
                {
                    if (streams.TryGetValue(name, out var next) && next.Listen == listener.Settings.Listen) continue;
                    _listeners.Remove(name);
                    stopping.Add(listener);
                }
            }
            foreach (var listener in stopping)
            {
                await listener.StopAsync();
                LogStopped(_log, listener.Name, listener.LocalEndPoint);
            }
            foreach (var (name, settings) in streams)
            {
                StreamListener? running;
                lock (_listeners) _listeners.TryGetValue(name, out running);
                if (running is not null)
                {
                    if (running.Settings != settings) running.Settings = settings; // same address: later connections use the new settings
                    continue;
                }
                if (!StreamListenAddress.TryParse(settings.Listen, out var endPoint, out var error)) throw new InvalidOperationException($"$.Streams.{name}.Listen: {error}"); // check rejects it first
                StreamListener started;
                try { started = StreamListener.Start(this, name, settings, endPoint!); }
                catch (Exception e) when (!starting && e is IOException or System.Net.Sockets.SocketException or Microsoft.AspNetCore.Connections.AddressInUseException)
                {
                    LogCannotListen(_log, name, settings.Listen, e.Message);
                    continue;
                }
                catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or Microsoft.AspNetCore.Connections.AddressInUseException)
                {
                    // As nginx says it: "bind() to 127.0.0.1:5433 failed (98: Address already in use)".
                    var errno = (e as System.Net.Sockets.SocketException ?? e.InnerException as System.Net.Sockets.SocketException)?.NativeErrorCode;
                    var file = _services.GetService<FileConfigProvider>()?.MainFile ?? "(configuration)";
                    throw new ConfigEntryException(new ConfigError(file, $"$.Streams.{name}.Listen",
                        $"bind() to {endPoint} failed ({(errno is { } n ? $"{n}: " : "")}{e.Message})"), e);
                }
                lock (_listeners) _listeners[name] = started;
                LogListening(_log, name, started.LocalEndPoint, settings.ClusterId);
            }
        }
        finally { _applying.Release(); }
    }

    /// <summary>Runs a session to its end, tracked for the shutdown.</summary>
    internal void Launch(StreamSession session)
    {
        _sessions.TryAdd(session, 0);
        _ = RunAsync(session);
    }

    private async Task RunAsync(StreamSession session)
    {
        try { await session.RunAsync(_abort.Token); }
        catch (Exception e) { LogSessionCrashed(_log, e); }
        finally { _sessions.TryRemove(session, out _); }
    }

    internal void AccessLog(Func<string> line)
    {
        if (_accessLog.Value is { } writer) writer.Write(line());
    }

    internal void Ended(string stream, IPEndPoint? client, StreamUpstream? upstream, StreamEnd end, string? reason)
    {
        var label = StreamEnds.Label(end);
        var upstreamEndPoint = upstream?.EndPoint;
        switch (end)
        {
            case StreamEnd.ConnectFailed or StreamEnd.Rejected: LogNotConnected(_log, stream, client, label, reason ?? ""); break;
            case StreamEnd.UpstreamError: LogEndedBy(_log, stream, client, upstreamEndPoint, label, reason ?? ""); break;
            case StreamEnd.Done or StreamEnd.NoDestination: break; // the normal end; the balancer logs a missing destination once a second
            default: LogEndedDebug(_log, stream, client, upstreamEndPoint, label, reason ?? ""); break;
        }
    }

    internal void AcceptFailed(string stream, Exception e) => LogAcceptFailed(_log, stream, e);

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _lifecycle.Reloaded -= OnReloaded;
        await _applying.WaitAsync(CancellationToken.None);
        try
        {
            List<StreamListener> listeners;
            lock (_listeners)
            {
                listeners = [.. _listeners.Values];
                _listeners.Clear();
            }
            foreach (var listener in listeners) await listener.StopAsync();
        }
        finally { _applying.Release(); }
        // Connections get the drain time (the host's shutdown timeout) to finish, then are stopped.
        try { await WaitForSessionsAsync(cancellationToken); }
        catch (OperationCanceledException) { }
        if (_sessions.IsEmpty) return;
        await _abort.CancelAsync();
        foreach (var session in _sessions.Keys) session.Abort();
        using var bounded = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try { await WaitForSessionsAsync(bounded.Token); }
        catch (OperationCanceledException) { }
    }

    private async Task WaitForSessionsAsync(CancellationToken cancellationToken)
    {
        while (!_sessions.IsEmpty) await Task.Delay(50, cancellationToken);
    }

    public void Dispose()
    {
        _abort.Dispose();
        _applying.Dispose();
    }

    [LoggerMessage(EventId = 9010, Level = LogLevel.Information, Message = "stream '{Stream}' listening on {EndPoint} (cluster '{ClusterId}')")]
    private static partial void LogListening(ILogger logger, string stream, IPEndPoint endPoint, string clusterId);

    [LoggerMessage(EventId = 9011, Level = LogLevel.Information, Message = "stream '{Stream}' stopped listening on {EndPoint}; its connections go on until they end")]
    private static partial void LogStopped(ILogger logger, string stream, IPEndPoint endPoint);

    [LoggerMessage(EventId = 9012, Level = LogLevel.Error, Message = "stream '{Stream}': cannot listen on {Listen}: {Reason}; the stream is not served until a reload can bind it")]
    private static partial void LogCannotListen(ILogger logger, string stream, string listen, string reason);

    [LoggerMessage(EventId = 9013, Level = LogLevel.Warning, Message = "stream '{Stream}': connection from {Client} closed ({End}): {Reason}")]
    private static partial void LogNotConnected(ILogger logger, string stream, IPEndPoint? client, string end, string reason);

    [LoggerMessage(EventId = 9014, Level = LogLevel.Information, Message = "stream '{Stream}': connection from {Client} to {Upstream} ended ({End}): {Reason}")]
    private static partial void LogEndedBy(ILogger logger, string stream, IPEndPoint? client, IPEndPoint? upstream, string end, string reason);

    [LoggerMessage(EventId = 9015, Level = LogLevel.Debug, Message = "stream '{Stream}': connection from {Client} to {Upstream} ended ({End}): {Reason}")]
    private static partial void LogEndedDebug(ILogger logger, string stream, IPEndPoint? client, IPEndPoint? upstream, string end, string reason);

    [LoggerMessage(EventId = 9016, Level = LogLevel.Error, Message = "stream '{Stream}': accepting failed; the listener stopped")]
    private static partial void LogAcceptFailed(ILogger logger, string stream, Exception exception);

    [LoggerMessage(EventId = 9017, Level = LogLevel.Error, Message = "stream connection failed unexpectedly")]
    private static partial void LogSessionCrashed(ILogger logger, Exception exception);
}
