namespace ZcProxy.Core.Diagnostics;

/// <summary>Why a request was sent upstream again.</summary>
internal enum RetryReason
{
    /// <summary>The zero-copy forwarder's pooled keep-alive connection was found closed: resent on a fresh connection to the same destination.</summary>
    StaleConnection,
    /// <summary>The try never reached the destination (connect refused or reset, nothing of the request accepted): next destination, any method.</summary>
    ConnectError,
    /// <summary>Connecting timed out (nothing of the request was sent): next destination, any method.</summary>
    ConnectTimeout,
    /// <summary>The destination failed after the request was sent, before the response head (RetryOn error).</summary>
    Error,
    /// <summary>No response head within the timeout (RetryOn timeout).</summary>
    Timeout,
    /// <summary>A RetryOn status was held back.</summary>
    Status,
    /// <summary>The destination was at MaxConnections with a full queue, or the queue wait timed out.</summary>
    Queue,
    /// <summary>The destination's circuit breaker refused the try.</summary>
    Breaker,
}

/// <summary>
/// <c>zcproxy_upstream_retries_total{reason}</c>: every repeated send of a request, by why. One family, declared
/// here, for both kinds of retry (the forwarder's fresh connection, the retry step's next destination).
/// </summary>
internal sealed class RetryMetrics
{
    public const string Name = "zcproxy_upstream_retries_total";
    private readonly Counter[] _byReason;

    public RetryMetrics(ProxyMetrics metrics)
    {
        var family = metrics.Counters(Name,
            "Requests sent upstream again, by reason: stale_connection (fresh connection, same destination); the others went to the next destination.",
            "reason");
        _byReason = Enum.GetValues<RetryReason>().Select(r => family.WithLabels(Label(r))).ToArray();
    }

    public Counter this[RetryReason reason] => _byReason[(int)reason];

    /// <summary>Retries of every reason.</summary>
    public long Total => _byReason.Sum(c => c.Value);

    public static string Label(RetryReason reason) => reason switch
    {
        RetryReason.StaleConnection => "stale_connection",
        RetryReason.ConnectError => "connect_error",
        RetryReason.ConnectTimeout => "connect_timeout",
        RetryReason.Error => "error",
        RetryReason.Timeout => "timeout",
        RetryReason.Status => "status",
        RetryReason.Queue => "queue",
        RetryReason.Breaker => "breaker",
        _ => reason.ToString().ToLowerInvariant(),
    };
}
