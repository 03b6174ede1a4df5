using System.Globalization;
using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// A cluster's pool settings (queueing, retries, breakers, hash key), read from its Metadata. The defaults are nginx's:
/// <c>proxy_next_upstream error timeout</c> with <c>proxy_next_upstream_tries 0</c> (every destination may be tried
/// once) and <c>max_fails=1 fail_timeout=10s</c>.
/// </summary>
internal sealed record ClusterBalancingSettings
{
    public static readonly ClusterBalancingSettings Default = new();

    /// <summary>Retries when none are configured: as many as there are other destinations (nginx <c>proxy_next_upstream_tries 0</c>).</summary>
    public const int UnlimitedRetries = int.MaxValue;
    /// <summary>nginx's <c>max_fails</c> default.</summary>
    public const int DefaultMaxFails = 1;

    /// <summary>Null: the forwarder's default.</summary>
    public TimeSpan? ConnectTimeout { get; init; }
    public HashKeySpec HashKey { get; init; } = HashKeySpec.Default;
    public int MaxQueue { get; init; }
    public TimeSpan QueueTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Further tries after the first; each destination is tried at most once whatever this allows.</summary>
    public int Retries { get; init; } = UnlimitedRetries;
    public bool RetryOnError { get; init; } = true;
    public bool RetryOnTimeout { get; init; } = true;
    public IReadOnlySet<int> RetryOnStatuses { get; init; } = new HashSet<int>();
    public TimeSpan RetryTimeout { get; init; }
    public bool RetryNonIdempotent { get; init; }
    public long RetryBodyLimit { get; init; } = 64 * 1024;
    public int MaxFails { get; init; } = DefaultMaxFails;
    /// <summary>True when MaxFails was written in the configuration (then it applies even to a lone destination).</summary>
    public bool MaxFailsConfigured { get; init; }
    /// <summary>Null: any MaxFails failures within FailTimeout open the breaker, whatever the successes (nginx).</summary>
    public double? FailRatio { get; init; }
    public TimeSpan FailTimeout { get; init; } = TimeSpan.FromSeconds(10);
    public IReadOnlySet<int> FailOnStatuses { get; init; } = new HashSet<int>();

    /// <summary>A shorter break would let a dead destination take a trial request every few moments.</summary>
    public static readonly TimeSpan MinFailTimeout = TimeSpan.FromMilliseconds(500);

    private static readonly SettingsByConfig<ClusterConfig, ClusterBalancingSettings> Cache = new(static c => Parse(c.Metadata, static (_, _) => { }));

    /// <summary>
    /// The MaxFails in force for a cluster of <paramref name="destinations"/> destinations; 0 means no breaker. Like
    /// nginx, which never marks the only server of an upstream unavailable, the default does not apply to a lone
    /// destination (there is nowhere else to send its requests); a configured MaxFails always applies.
    /// </summary>
    public int BreakerMaxFails(int destinations) => MaxFailsConfigured || destinations > 1 ? MaxFails : 0;

    public static ClusterBalancingSettings For(ClusterConfig config) => Cache.For(config);

    public static ClusterBalancingSettings Parse(IReadOnlyDictionary<string, string>? metadata, Action<string, string> error)
    {
        if (metadata is null || metadata.Count == 0) return Default;
        var s = Default;
        if (metadata.TryGetValue(BalancingMetadataKeys.HashKey, out var hk))
        {
            if (HashKeySpec.TryParse(hk, out var spec)) s = s with { HashKey = spec };
            else error(BalancingMetadataKeys.HashKey, $"unknown hash key '{hk}': use {HashKeySpec.Syntax}");
        }
        if (metadata.TryGetValue(BalancingMetadataKeys.ConnectTimeout, out var ct))
        {
            if (Duration.TryParse(ct, out var connect) && connect > TimeSpan.Zero && connect <= Duration.MaxTimeout) s = s with { ConnectTimeout = connect };
            else error(BalancingMetadataKeys.ConnectTimeout, $"'{ct}' is not a duration above zero and at most {Duration.MaxTimeoutText}, such as \"2s\"");
        }
        s = s with
        {
            MaxQueue = Int(metadata, BalancingMetadataKeys.MaxQueue, s.MaxQueue, error),
            QueueTimeout = Time(metadata, BalancingMetadataKeys.QueueTimeout, s.QueueTimeout, error, Duration.MaxTimeout),
            Retries = Int(metadata, BalancingMetadataKeys.Retries, s.Retries, error),
            RetryTimeout = Time(metadata, BalancingMetadataKeys.RetryTimeout, s.RetryTimeout, error),
            MaxFails = Int(metadata, BalancingMetadataKeys.MaxFails, s.MaxFails, error),
            MaxFailsConfigured = metadata.ContainsKey(BalancingMetadataKeys.MaxFails),
            FailTimeout = Time(metadata, BalancingMetadataKeys.FailTimeout, s.FailTimeout, error, Duration.MaxTimeout),
        };
        if (s.FailTimeout < MinFailTimeout)
        {
            error(BalancingMetadataKeys.FailTimeout, "must be at least 500ms");
            s = s with { FailTimeout = MinFailTimeout };
        }
        if (metadata.TryGetValue(BalancingMetadataKeys.FailRatio, out var fr))
        {
            if (double.TryParse(fr, NumberStyles.Float, CultureInfo.InvariantCulture, out var ratio) && ratio > 0 && ratio <= 1) s = s with { FailRatio = ratio };
            else error(BalancingMetadataKeys.FailRatio, $"'{fr}' is not a ratio above 0 and at most 1, e.g. 0.5");
        }
        if (metadata.TryGetValue(BalancingMetadataKeys.RetryNonIdempotent, out var ni))
        {
            if (bool.TryParse(ni, out var b)) s = s with { RetryNonIdempotent = b };
            else error(BalancingMetadataKeys.RetryNonIdempotent, $"'{ni}' is not true or false");
        }
        if (metadata.TryGetValue(BalancingMetadataKeys.RetryBodyLimit, out var bl))
        {
            if (ByteSize.TryParse(bl, out var bytes) && bytes >= 0) s = s with { RetryBodyLimit = bytes };
            else error(BalancingMetadataKeys.RetryBodyLimit, $"'{bl}' is not a size such as \"64KiB\"");
        }
        if (metadata.TryGetValue(BalancingMetadataKeys.RetryOn, out var ro))
        {
            var statuses = new HashSet<int>();
            bool onError = false, onTimeout = false;
            foreach (var token in ro.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (token.Equals("error", StringComparison.OrdinalIgnoreCase)) onError = true;
                else if (token.Equals("timeout", StringComparison.OrdinalIgnoreCase)) onTimeout = true;
                else if (IsStatus(token, out var status)) statuses.Add(status);
                else error(BalancingMetadataKeys.RetryOn, $"unknown condition '{token}': use error, timeout and status codes 500-599 or 429, e.g. \"error,timeout,502,503\"");
            }
            s = s with { RetryOnError = onError, RetryOnTimeout = onTimeout, RetryOnStatuses = statuses };
        }
        if (metadata.TryGetValue(BalancingMetadataKeys.FailOn, out var fo))
        {
            var statuses = new HashSet<int>();
            foreach (var token in fo.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (IsStatus(token, out var status)) statuses.Add(status);
                else error(BalancingMetadataKeys.FailOn, $"'{token}' is not a status code 500-599 or 429 (errors and timeouts always count)");
            }
            s = s with { FailOnStatuses = statuses };
        }
        return s;
    }

    private static bool IsStatus(string token, out int status)
        => int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out status) && (status is >= 500 and <= 599 || status == 429);

    private static int Int(IReadOnlyDictionary<string, string> metadata, string key, int fallback, Action<string, string> error)
    {
        if (!metadata.TryGetValue(key, out var text)) return fallback;
        if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 0) return n;
        error(key, $"'{text}' is not a whole number >= 0");
        return fallback;
    }

    /// <summary>A duration; <paramref name="max"/> for those that run a timer or are added to the clock (a break's end).</summary>
    private static TimeSpan Time(IReadOnlyDictionary<string, string> metadata, string key, TimeSpan fallback, Action<string, string> error, TimeSpan? max = null)
    {
        if (!metadata.TryGetValue(key, out var text)) return fallback;
        if (Duration.TryParse(text, out var t) && (max is null || t <= max)) return t;
        error(key, max is null ? $"'{text}' is not a duration such as \"500ms\" or \"10s\""
            : $"'{text}' is not a duration of at most {Duration.MaxTimeoutText}, such as \"500ms\" or \"10s\"");
        return fallback;
    }
}
