using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Upstream;

/// <summary>
/// Keep-alive connections per event loop and destination (host:port), most recently used first (nginx: upstream
/// keepalive; nginx's pools are per worker, ours per loop).
/// A connection is returned only when its response was consumed exactly and the upstream allows reuse; on
/// rent, idle-expired and stale (readable) connections are discarded. Limits come from ZeroCopy options and
/// are read per call, so a reload applies to the next request.
/// </summary>
internal sealed class UpstreamConnectionPool : IDisposable
{
    /// <summary>Idle connections per (event loop, destination): a loop-native connection is only ever used on its own loop (-1: none).</summary>
    private readonly ConcurrentDictionary<(int Loop, string Destination), IdleStack> _idle = new(KeyComparer.Instance);
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
    public UpstreamConnection? TryRentIdle(string destinationKey, EventLoop? loop = null)
    {
        var idleTimeout = _options.Current.ZeroCopy.IdleConnectionTimeout;
        if (_idle.TryGetValue((loop?.Index ?? -1, destinationKey), out var own) && TryPopUsable(own, idleTimeout) is { } local) return local;
        if (loop is null) return null;
        // None idle on this loop: take one from another loop's pool rather than open a new connection (nginx keeps a
        // pool per worker and opens more; an upstream's connection count should not grow with our core count).
        foreach (var (key, stack) in _idle)
        {
            if (key.Loop == loop.Index || key.Loop < 0 || !string.Equals(key.Destination, destinationKey, StringComparison.OrdinalIgnoreCase)) continue;
            if (TryPopUsable(stack, idleTimeout) is { } moved)
            {
                moved.MoveTo(loop);
                return moved;
            }
        }
        return null;
    }

    private UpstreamConnection? TryPopUsable(IdleStack stack, TimeSpan idleTimeout)
    {
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

    /// <summary>
    /// A new connection. With <paramref name="loop"/> (the client connection's event loop) it is loop-native: connected
    /// with a non-blocking connect(2), registered with that loop, read and written by direct syscalls.
    /// </summary>
    public async Task<UpstreamConnection> ConnectAsync(string destinationKey, string host, int port, TimeSpan timeout, CancellationToken cancellationToken, EventLoop? loop = null)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        if (loop is not null)
        {
            try
            {
                var connection = await ConnectOnLoopAsync(loop, destinationKey, host, port, cts.Token);
                _opened.Increment();
                return connection;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"connecting to {destinationKey} timed out after {timeout.TotalMilliseconds:0} ms");
            }
        }
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

    /// <summary>Every address of <paramref name="host"/> in turn (like Socket.ConnectAsync(DnsEndPoint)), on <paramref name="loop"/>.</summary>
    private static async Task<UpstreamConnection> ConnectOnLoopAsync(EventLoop loop, string destinationKey, string host, int port, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(host, out var literal))
            return await UpstreamConnection.ConnectOnLoopAsync(loop, new IPEndPoint(literal, port), destinationKey, cancellationToken);
        var addresses = await Dns.GetHostAddressesAsync(host, cancellationToken);
        if (addresses.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
        for (int i = 0; ; i++)
        {
            try { return await UpstreamConnection.ConnectOnLoopAsync(loop, new IPEndPoint(addresses[i], port), destinationKey, cancellationToken); }
            catch (SocketException) when (i < addresses.Length - 1) { }
        }
    }

    /// <summary>Keeps a connection whose last response was consumed exactly; disposes it when the pool is full.</summary>
    public void Return(UpstreamConnection connection)
    {
        var max = _options.Current.ZeroCopy.MaxIdleConnectionsPerDestination;
        var stack = _idle.GetOrAdd((connection.Loop?.Index ?? -1, connection.DestinationKey), static _ => new IdleStack());
        // Parked before it is pushed: another loop may take it at once.
        connection.Park();
        connection.LastUsed = _time.GetTimestamp();
        if (!stack.TryPush(connection, max))
        {
            connection.Dispose();
            return;
        }
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

    /// <summary>
    /// One (loop, destination)'s idle connections, the most recently used on top: an array stack under a lock, taken
    /// for a push or pop only (a ConcurrentStack allocates a node per push, and a connection is pushed once per request).
    /// </summary>
    private sealed class IdleStack
    {
        private readonly Stack<UpstreamConnection> _stack = new();
        private readonly Lock _lock = new();

        public bool IsEmpty { get { lock (_lock) return _stack.Count == 0; } }

        public bool TryPop([System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out UpstreamConnection connection)
        {
            lock (_lock) return _stack.TryPop(out connection);
        }

        public void Push(UpstreamConnection connection)
        {
            lock (_lock) _stack.Push(connection);
        }

        /// <summary>Pushes unless <paramref name="max"/> connections are idle already (or max is 0).</summary>
        public bool TryPush(UpstreamConnection connection, int max)
        {
            lock (_lock)
            {
                if (_stack.Count >= max) return false;
                _stack.Push(connection);
                return true;
            }
        }
    }

    private sealed class KeyComparer : IEqualityComparer<(int Loop, string Destination)>
    {
        public static readonly KeyComparer Instance = new();
        public bool Equals((int Loop, string Destination) x, (int Loop, string Destination) y)
            => x.Loop == y.Loop && string.Equals(x.Destination, y.Destination, StringComparison.OrdinalIgnoreCase);
        public int GetHashCode((int Loop, string Destination) key)
            => HashCode.Combine(key.Loop, StringComparer.OrdinalIgnoreCase.GetHashCode(key.Destination));
    }
}
