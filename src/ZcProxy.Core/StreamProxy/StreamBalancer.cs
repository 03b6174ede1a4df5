using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.StreamProxy;

/// <summary>
/// Picks and connects a stream connection's upstream with the HTTP pools' own parts (Balancing/): YARP's destination
/// state and ZcProxy's registry, health (active TCP checks land in YARP's state, passive failures in the breakers),
/// backups, the cluster's policy (ConsistentHash on the client address), MaxConnections with its queue, breakers, and
/// nginx's <c>proxy_next_upstream</c> for connects: a refused or timed-out connect goes to the next untried
/// destination, bounded by Retries and RetryTimeout, as is a try refused locally (full queue, open breaker).
/// </summary>
internal sealed partial class StreamBalancer(IProxyStateLookup state, DestinationRegistry pools, IEnumerable<ILoadBalancingPolicy> policies,
    RetryMetrics retries, RuntimeOptions options, ILogger<StreamBalancer> logger)
{
    private const string DefaultPolicy = "PowerOfTwoChoices"; // YARP's default
    private readonly Dictionary<string, ILoadBalancingPolicy> _policies = policies
        .GroupBy(p => p.Name, StringComparer.OrdinalIgnoreCase).ToDictionary(g => g.Key, g => g.Last(), StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, long> _lastNoDestinationLog = new(StringComparer.Ordinal);

    private DestinationRegistry Pools => pools;

    public async Task<StreamConnectResult> ConnectAsync(string stream, string clusterId, EventLoop loop, IPEndPoint? client,
        StreamMetrics.StreamCounters counters, CancellationToken cancellationToken)
    {
        if (!state.TryGetCluster(clusterId, out var cluster)) return StreamConnectResult.Failed(StreamEnd.NoDestination, $"cluster '{clusterId}' is not loaded", 0);
        var config = cluster.Model.Config;
        var settings = ClusterBalancingSettings.For(config);
        var pool = Candidates(cluster, settings);
        if (pool.Tier.Count == 0)
        {
            LogNoDestinationOnceASecond(stream, clusterId, cluster.DestinationsState.AllDestinations.Count);
            return StreamConnectResult.Failed(StreamEnd.NoDestination, $"cluster '{clusterId}' has no healthy destination", 0);
        }

        // The policies read the client's address from an HttpContext (ConsistentHash's ClientIp key).
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = client?.Address;
        context.Connection.RemotePort = client?.Port ?? 0;
        var connectTimeout = UpstreamTimeouts.For(options.Current.ZeroCopy, null, config.Metadata).Connect;
        long start = pools.Time.GetTimestamp();
        var candidate = Pick(context, pool, pool.Tier);
        var attempt = new ConnectTry(this, loop, connectTimeout, counters, cancellationToken);
        while (true)
        {
            pool.Tries++;
            pool.Current = candidate;
            var upstream = await attempt.RunAsync(pool, candidate!);
            if (upstream is not null) return StreamConnectResult.Connected(upstream, pool.Tries);
            pool.MarkTried(candidate!);
            pool.Current = null;
            var next = MayRetry(pool, attempt.Retry, start, cancellationToken) ? Pick(context, pool, pool.Untried(d => !pools.Get(clusterId, d).IsOutOfRotation)) : null;
            if (next is null) return StreamConnectResult.Failed(attempt.Failure, attempt.Reason, pool.Tries);
            retries[attempt.Retry].Increment();
            LogRetrying(logger, stream, pool.Tries, clusterId, candidate!.DestinationId, attempt.Reason, next.DestinationId);
            candidate = next;
        }
    }

    /// <summary>
    /// Healthy destinations in rotation (YARP's active state, which the TCP prober sets; the breakers; the runtime API's
    /// drain and disable), primaries apart from backups.
    /// </summary>
    private BalancingRequestFeature Candidates(ClusterState cluster, ClusterBalancingSettings settings)
    {
        var all = cluster.DestinationsState.AllDestinations;
        List<DestinationState> primaries = [], backups = [];
        foreach (var d in all)
        {
            var runtime = pools.Get(cluster.ClusterId, d);
            runtime.BreakerFor(settings, all.Count);
            var destination = d.Model is { } m ? DestinationBalancingSettings.For(m.Config) : DestinationBalancingSettings.Default;
            bool healthy = DestinationRegistry.IsHealthy(d, runtime);
            runtime.ObserveHealth(healthy, destination);
            // Drained and disabled destinations (the runtime API) take no new connection: streams have no affinity to honour.
            if (healthy && !runtime.IsOutOfRotation) (destination.Backup ? backups : primaries).Add(d);
        }
        return new BalancingRequestFeature(cluster.ClusterId, cluster, settings, primaries, backups);
    }

    private DestinationState? Pick(HttpContext context, BalancingRequestFeature pool, IReadOnlyList<DestinationState> candidates)
    {
        if (candidates.Count <= 1) return candidates.Count == 0 ? null : candidates[0];
        var name = pool.Cluster.Model.Config.LoadBalancingPolicy ?? DefaultPolicy;
        return _policies.TryGetValue(name, out var policy) ? policy.PickDestination(context, pool.Cluster, candidates) ?? candidates[0] : candidates[0];
    }

    private bool MayRetry(BalancingRequestFeature pool, RetryReason reason, long start, CancellationToken cancellationToken)
    {
        var settings = pool.Settings;
        if (cancellationToken.IsCancellationRequested || pool.Tries > settings.Retries) return false;
        if (settings.RetryTimeout > TimeSpan.Zero && pools.Time.GetElapsedTime(start) >= settings.RetryTimeout) return false;
        return reason switch
        {
            RetryReason.ConnectError => settings.RetryOnError,
            RetryReason.ConnectTimeout => settings.RetryOnTimeout,
            _ => true, // refused locally (queue, breaker): the destination never saw the connection
        };
    }

    private void LogNoDestinationOnceASecond(string stream, string clusterId, int configured)
    {
        long now = pools.Time.GetTimestamp();
        long last = _lastNoDestinationLog.GetValueOrDefault(stream);
        if (last != 0 && pools.Time.GetElapsedTime(last, now) < TimeSpan.FromSeconds(1)) return;
        _lastNoDestinationLog[stream] = now;
        LogNoDestination(logger, stream, clusterId, configured);
    }

    /// <summary>One try at one destination: a connection slot, the breaker's consent, and the connect itself.</summary>
    private sealed class ConnectTry
    {
        private readonly StreamBalancer _owner;
        private readonly EventLoop _loop;
        private readonly TimeSpan _timeout;
        private readonly StreamMetrics.StreamCounters _counters;
        private readonly CancellationToken _cancellation;
        private DestinationState? _destination;
        private DestinationRuntime? _runtime;
        private StreamUpstream? _connected;

        public ConnectTry(StreamBalancer owner, EventLoop loop, TimeSpan timeout, StreamMetrics.StreamCounters counters, CancellationToken cancellation)
        {
            _owner = owner;
            _loop = loop;
            _timeout = timeout;
            _counters = counters;
            _cancellation = cancellation;
        }

        /// <summary>Why the last try failed, for the retry counter, the close reason and the log.</summary>
        public RetryReason Retry { get; private set; }
        public StreamEnd Failure { get; private set; }
        public string Reason { get; private set; } = "";

        public async Task<StreamUpstream?> RunAsync(BalancingRequestFeature pool, DestinationState destination)
        {
            var runtime = _owner.Pools.Get(pool.ClusterId, destination);
            int limit = destination.Model is { } m ? DestinationBalancingSettings.For(m.Config).MaxConnections : 0;
            if (!runtime.Slots.TryEnter(limit))
            {
                SlotResult slot;
                try { slot = await runtime.Slots.EnterAsync(limit, pool.Settings.MaxQueue, pool.Settings.QueueTimeout, _cancellation); }
                catch (OperationCanceledException) { return Refused(RetryReason.Queue, StreamEnd.Stopped, "the proxy stopped while the connection was queued"); }
                if (slot != SlotResult.Entered)
                    return Refused(RetryReason.Queue, StreamEnd.Rejected, $"{destination.DestinationId} is at MaxConnections {limit}" + (slot == SlotResult.TimedOut ? " and the queue timed out" : " and its queue is full"));
            }
            _destination = destination;
            _runtime = runtime;
            _connected = null;
            var breaker = runtime.BreakerFor(pool.Settings, pool.Cluster.DestinationsState.AllDestinations.Count);
            bool ran = true;
            try
            {
                if (breaker is null) await ConnectAsync(this);
                else ran = await breaker.TryExecuteAsync(static async self => !await ConnectAsync(self), this);
            }
            finally { if (_connected is null) runtime.Slots.Exit(); } // the slot stays taken only by a connection
            return ran ? _connected : Refused(RetryReason.Breaker, StreamEnd.Rejected, $"{destination.DestinationId}'s circuit breaker is open");
        }

        /// <summary>Connects to the try's destination (each address DNS gives, in turn); true when connected.</summary>
        private static async ValueTask<bool> ConnectAsync(ConnectTry self)
        {
            var destination = self._destination!;
            var runtime = self._runtime!;
            var time = self._owner.Pools.Time;
            long start = time.GetTimestamp();
            string failure;
            bool timedOut = false;
            if (!TcpDestination.TryParse(destination.Model?.Config.Address, out var address)) failure = $"'{destination.Model?.Config.Address}' is not a tcp:// address";
            else
            {
                IPAddress[] addresses;
                try { addresses = await address!.ResolveAsync(self._cancellation); }
                catch (Exception e) when (e is System.Net.Sockets.SocketException or OperationCanceledException) { addresses = []; }
                failure = addresses.Length == 0 ? $"{address} does not resolve" : "";
                foreach (var ip in addresses)
                {
                    var endPoint = new IPEndPoint(ip, address!.Port);
                    var result = await LoopConnect.ConnectAsync(self._loop, endPoint, self._timeout, self._cancellation);
                    if (result.Outcome == ConnectOutcome.Connected)
                    {
                        int countedOn = runtime.BeginRequest();
                        self._connected = new StreamUpstream(destination, runtime, result.Connected, endPoint, time.GetElapsedTime(start), countedOn);
                        return true;
                    }
                    timedOut = result.Outcome == ConnectOutcome.TimedOut;
                    failure = result.Describe(endPoint);
                }
            }
            self._counters.ConnectFailures.Increment();
            runtime.RecordFailure();
            self.Retry = timedOut ? RetryReason.ConnectTimeout : RetryReason.ConnectError;
            self.Failure = StreamEnd.ConnectFailed;
            self.Reason = $"{destination.DestinationId}: {failure}";
            return false;
        }

        private StreamUpstream? Refused(RetryReason retry, StreamEnd failure, string reason)
        {
            Retry = retry;
            Failure = failure;
            Reason = reason;
            return null;
        }
    }

    [LoggerMessage(EventId = 9001, Level = LogLevel.Warning, Message = "stream '{Stream}': cluster '{ClusterId}' has no healthy destination ({Configured} configured); connections are closed at once")]
    private static partial void LogNoDestination(ILogger logger, string stream, string clusterId, int configured);

    [LoggerMessage(EventId = 9002, Level = LogLevel.Information, Message = "stream '{Stream}': try {Try} to {ClusterId}/{DestinationId} failed ({Reason}), retrying on {NextId}")]
    private static partial void LogRetrying(ILogger logger, string stream, int @try, string clusterId, string destinationId, string reason, string nextId);
}
