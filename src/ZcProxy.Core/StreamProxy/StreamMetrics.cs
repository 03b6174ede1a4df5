using System.Collections.Concurrent;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Relay;

namespace ZcProxy.Core.StreamProxy;

/// <summary>
/// The per-stream metric families (bytes also count in zcproxy_body_bytes_total, by mechanism):
/// zcproxy_stream_connections_total, zcproxy_stream_connect_failures_total, zcproxy_stream_closed_total{reason},
/// zcproxy_stream_bytes_total{direction} and the zcproxy_stream_active_connections gauge, all labelled by stream name.
/// </summary>
internal sealed class StreamMetrics
{
    private readonly CounterFamily _connections, _connectFailures, _closed, _bytes;
    private readonly ConcurrentDictionary<string, StreamCounters> _streams = new(StringComparer.Ordinal);

    public StreamMetrics(ProxyMetrics metrics)
    {
        _connections = metrics.Counters("zcproxy_stream_connections_total", "Client connections accepted by a stream.", "stream");
        _connectFailures = metrics.Counters("zcproxy_stream_connect_failures_total", "Upstream connects of a stream that failed (refused, unreachable, timed out); each try counts.", "stream");
        _closed = metrics.Counters("zcproxy_stream_closed_total",
            "Stream connections closed, by reason: done, client_error, upstream_error, idle_timeout, stopped, no_destination, connect_failed, rejected.", "stream", "reason");
        _bytes = metrics.Counters("zcproxy_stream_bytes_total", "Bytes relayed by a stream: request = client to upstream, response = upstream to client.", "stream", "direction");
        metrics.Gauge("zcproxy_stream_active_connections", "Open client connections of a stream.", ["stream"],
            () => _streams.Values.Select(s => (new[] { s.Name }, (double)s.Active)));
    }

    /// <summary>The counters of one stream (kept for the process's life: a removed stream's connections may still run).</summary>
    public StreamCounters For(string stream) => _streams.GetOrAdd(stream, static (name, self) => new StreamCounters(name, self), this);

    internal sealed class StreamCounters
    {
        private readonly Counter[] _closed;
        private int _active;

        internal StreamCounters(string name, StreamMetrics families)
        {
            Name = name;
            Connections = families._connections.WithLabels(name);
            ConnectFailures = families._connectFailures.WithLabels(name);
            _closed = StreamEnds.All.Select(e => families._closed.WithLabels(name, StreamEnds.Label(e))).ToArray();
            Relayed = new RelayCounters(families._bytes.WithLabels(name, "request"), families._bytes.WithLabels(name, "response"));
        }

        public string Name { get; }
        public Counter Connections { get; }
        public Counter ConnectFailures { get; }
        public RelayCounters Relayed { get; }
        public int Active => Volatile.Read(ref _active);

        public void Opened()
        {
            Connections.Increment();
            Interlocked.Increment(ref _active);
        }

        public void Closed(StreamEnd end)
        {
            _closed[(int)end].Increment();
            Interlocked.Decrement(ref _active);
        }

        public long ClosedCount(StreamEnd end) => _closed[(int)end].Value;
    }
}
