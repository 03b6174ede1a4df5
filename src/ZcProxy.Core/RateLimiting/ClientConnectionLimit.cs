using System.Net;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.RateLimiting;

/// <summary>
/// Limits.MaxConnectionsPerClient: how many proxy connections one client address may hold open (nginx
/// <c>limit_conn perip N</c> with <c>limit_conn_zone $binary_remote_addr</c>; HAProxy <c>tcp-request connection reject
/// if { src_conn_cur ge N }</c>). A connection over the limit is closed at accept, before TLS or any HTTP, as HAProxy does.
/// A concurrency limiter of System.Threading.RateLimiting per address; the setting is read per connection, so a reload
/// applies it to new connections.
/// </summary>
internal sealed class ClientConnectionLimit(RuntimeOptions runtime, RateLimitMetrics metrics) : IDisposable
{
    private readonly object _lock = new();
    private (int Limit, PartitionedRateLimiter<IPAddress> Limiter)? _current;

    public Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        int limit = runtime.Current.Limits.MaxConnectionsPerClient;
        // Without a limit, no async frame of its own: it would live as long as the connection (128 B per idle one).
        if (limit <= 0 || RateLimitKey.Normalize((connection.RemoteEndPoint as IPEndPoint)?.Address) is not { } address)
            return next(connection);
        return LimitedAsync(connection, next, limit, address);
    }

    private async Task LimitedAsync(ConnectionContext connection, ConnectionDelegate next, int limit, IPAddress address)
    {
        using var lease = LimiterFor(limit).AttemptAcquire(address);
        if (!lease.IsAcquired)
        {
            metrics.ConnectionRejections.Increment();
            connection.Abort(new ConnectionAbortedException($"{address} has {limit} connections open already (Limits.MaxConnectionsPerClient)"));
            return;
        }
        await next(connection);
    }

    public void Dispose()
    {
        lock (_lock) _current?.Limiter.Dispose();
    }

    /// <summary>The limiter for this limit; a changed limit starts a new one (connections open under the old one keep their permits there).</summary>
    private PartitionedRateLimiter<IPAddress> LimiterFor(int limit)
    {
        var current = _current;
        if (current is { } c && c.Limit == limit) return c.Limiter;
        lock (_lock)
        {
            if (_current is { } again && again.Limit == limit) return again.Limiter;
            var limiter = PartitionedRateLimiter.Create<IPAddress, IPAddress>(address =>
                RateLimitPartition.GetConcurrencyLimiter(address, _ => new ConcurrencyLimiterOptions { PermitLimit = limit, QueueLimit = 0 }));
            _current = (limit, limiter);
            return limiter;
        }
    }
}

internal static class ClientConnectionLimitExtensions
{
    /// <summary>First on a proxy listener: refused connections cost no TLS handshake.</summary>
    public static ListenOptions UseClientConnectionLimit(this ListenOptions listenOptions, ClientConnectionLimit limit)
    {
        listenOptions.Use(next => connection => limit.OnConnectionAsync(connection, next));
        return listenOptions;
    }
}
