using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Upstream;

/// <summary>
/// Keep-alive connections per destination (host:port), most recently used first (nginx: upstream keepalive).
/// A connection is returned only when its response was consumed exactly and the upstream allows reuse; on
/// rent, idle-expired and stale (readable) connections are discarded. Limits come from ZeroCopy options and
/// are read per call, so a reload applies to the next request.
/// </summary>
internal sealed class UpstreamConnectionPool : IDisposable
{
    private readonly ConcurrentDictionary<string, ConcurrentStack<UpstreamConnection>> _idle = new(StringComparer.OrdinalIgnoreCase);
    private readonly RuntimeOptions _options;
    private readonly TimeProvider _time;
    private readonly Counter _opened, _reused, _stale;
    private readonly ITimer _sweeper;
    private int _idleCount;

    public UpstreamConnectionPool(RuntimeOptions options, ProxyMetrics metrics, TimeProvider time)
    {
        _options = options;
        _time = time;
        _opened = metrics.Counter("zcproxy_upstream_connections_opened_total", "Upstream connections opened by the zero-copy forwarder.");
        _reused = metrics.Counter("zcproxy_upstream_connections_reused_total", "Requests sent on a pooled keep-alive upstream connection.");
        _stale = metrics.Counter("zcproxy_upstream_connections_stale_total", "Pooled upstream connections found closed or expired before reuse.");
        metrics.Gauge("zcproxy_upstream_idle_connections", "Idle keep-alive upstream connections held by the zero-copy forwarder.", () => Volatile.Read(ref _idleCount));
        _sweeper = time.CreateTimer(_ => Sweep(), null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5));
    }

    public int IdleCount => Volatile.Read(ref _idleCount);

    /// <summary>A pooled connection that still looks usable, or null.</summary>
    public UpstreamConnection? TryRentIdle(string destinationKey)
    {
        if (!_idle.TryGetValue(destinationKey, out var stack)) return null;
        var idleTimeout = _options.Current.ZeroCopy.IdleConnectionTimeout;
        while (stack.TryPop(out var connection))
        {
            Interlocked.Decrement(ref _idleCount);
            if (_time.GetElapsedTime(connection.LastUsed) > idleTimeout || connection.LooksStale())
            {
                _stale.Increment();
                connection.Dispose();
                continue;
            }
            _reused.Increment();
            return connection;
        }
        return null;
    }

    public async Task<UpstreamConnection> ConnectAsync(string destinationKey, string host, int port, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (IPAddress.TryParse(host, out var address)) await socket.ConnectAsync(new IPEndPoint(address, port), cts.Token);
            else await socket.ConnectAsync(new DnsEndPoint(host, port), cts.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new TimeoutException($"connecting to {destinationKey} timed out after {timeout.TotalMilliseconds:0} ms");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        _opened.Increment();
        return new UpstreamConnection(socket, destinationKey);
    }

    /// <summary>Keeps a connection whose last response was consumed exactly; disposes it when the pool is full.</summary>
    public void Return(UpstreamConnection connection)
    {
        var max = _options.Current.ZeroCopy.MaxIdleConnectionsPerDestination;
        var stack = _idle.GetOrAdd(connection.DestinationKey, static _ => new ConcurrentStack<UpstreamConnection>());
        if (max <= 0 || stack.Count >= max)
        {
            connection.Dispose();
            return;
        }
        connection.LastUsed = _time.GetTimestamp();
        stack.Push(connection);
        Interlocked.Increment(ref _idleCount);
    }

    /// <summary>Closes idle connections past IdleConnectionTimeout, so an idle proxy does not hold sockets forever.</summary>
    internal void Sweep()
    {
        var idleTimeout = _options.Current.ZeroCopy.IdleConnectionTimeout;
        foreach (var stack in _idle.Values)
        {
            if (stack.IsEmpty) continue;
            var keep = new List<UpstreamConnection>();
            while (stack.TryPop(out var connection))
            {
                Interlocked.Decrement(ref _idleCount);
                if (_time.GetElapsedTime(connection.LastUsed) > idleTimeout || connection.LooksStale()) connection.Dispose();
                else keep.Add(connection);
            }
            for (int i = keep.Count - 1; i >= 0; i--)
            {
                stack.Push(keep[i]);
                Interlocked.Increment(ref _idleCount);
            }
        }
    }

    public void Dispose()
    {
        _sweeper.Dispose();
        foreach (var stack in _idle.Values)
            while (stack.TryPop(out var connection)) connection.Dispose();
    }
}
