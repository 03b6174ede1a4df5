namespace ZcProxy.Core.Balancing;

/// <summary>
/// The Metadata keys that configure pools, as operators write them in cluster and destination Metadata.
/// nginx/HAProxy equivalents are in docs/pools.md.
/// </summary>
internal static class BalancingMetadataKeys
{
    // Destination Metadata
    /// <summary>Relative share of traffic, a positive integer (nginx <c>weight=</c>, HAProxy <c>weight</c>). Default 1.</summary>
    public const string Weight = "Weight";
    /// <summary><c>true</c>: used only when no primary destination is available (nginx <c>backup</c>).</summary>
    public const string Backup = "Backup";
    /// <summary>Concurrent requests to this destination; 0 = unlimited (nginx <c>max_conns</c>, HAProxy <c>maxconn</c>).</summary>
    public const string MaxConnections = "MaxConnections";
    /// <summary>Time over which the weight ramps up after the destination becomes healthy again (HAProxy <c>slowstart</c>).</summary>
    public const string SlowStart = "SlowStart";

    // Cluster Metadata
    /// <summary>How long connecting to a destination may take (nginx <c>proxy_connect_timeout</c>, HAProxy <c>timeout connect</c>). Default: the forwarder's.</summary>
    public const string ConnectTimeout = "ConnectTimeout";
    /// <summary>ConsistentHash key: ClientIp, Header:NAME, Cookie:NAME, Path or PathAndQuery (nginx <c>hash</c>, <c>ip_hash</c>).</summary>
    public const string HashKey = "HashKey";
    /// <summary>Requests that may wait per destination when it is at MaxConnections (HAProxy <c>maxqueue</c>). Default 0: no queue.</summary>
    public const string MaxQueue = "MaxQueue";
    /// <summary>How long a queued request waits for a slot before 503 (HAProxy <c>timeout queue</c>). Default 5s.</summary>
    public const string QueueTimeout = "QueueTimeout";
    /// <summary>Further tries on another destination after the first (nginx <c>proxy_next_upstream_tries</c> minus one). Default: every other destination once (tries 0); 0 turns retries off.</summary>
    public const string Retries = "Retries";
    /// <summary>What is retried: <c>error</c>, <c>timeout</c> and status codes, comma-separated (nginx <c>proxy_next_upstream</c>). Default "error,timeout".</summary>
    public const string RetryOn = "RetryOn";
    /// <summary>No new try starts after this much time since the first (nginx <c>proxy_next_upstream_timeout</c>). Default 0: no limit.</summary>
    public const string RetryTimeout = "RetryTimeout";
    /// <summary><c>true</c>: POST, PATCH... are retried too (nginx <c>non_idempotent</c>). Default false.</summary>
    public const string RetryNonIdempotent = "RetryNonIdempotent";
    /// <summary>Request bodies up to this size are buffered so that they can be replayed. Default 64KiB.</summary>
    public const string RetryBodyLimit = "RetryBodyLimit";
    /// <summary>Failures within FailTimeout that open a destination's breaker (nginx <c>max_fails</c>). Default 1 (not for a lone destination unless written); 0 = off.</summary>
    public const string MaxFails = "MaxFails";
    /// <summary>The share of the destination's tries within FailTimeout that must have failed too. Default: not checked (nginx).</summary>
    public const string FailRatio = "FailRatio";
    /// <summary>The window in which MaxFails are counted and how long an open breaker keeps the destination out (nginx <c>fail_timeout</c>). Default 10s.</summary>
    public const string FailTimeout = "FailTimeout";
    /// <summary>Response statuses that count as breaker failures besides errors and timeouts, e.g. "500,502,503,504".</summary>
    public const string FailOn = "FailOn";

    public static readonly string[] DestinationKeys = [Weight, Backup, MaxConnections, SlowStart];
    public static readonly string[] ClusterKeys = [ConnectTimeout, HashKey, MaxQueue, QueueTimeout, Retries, RetryOn, RetryTimeout, RetryNonIdempotent, RetryBodyLimit, MaxFails, FailRatio, FailTimeout, FailOn];
}
