using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Caching.Peers;

/// <summary>
/// The fleet as this node sees it: the node list (Cache.Peers.Nodes, read per request so a reload applies, or the
/// list etcd holds), which nodes are skipped after a failed connect, and so which node owns a key.
/// </summary>
internal sealed partial class CachePeers(RuntimeOptions runtime, TimeProvider time, ILogger<CachePeers> log)
{
    /// <summary>Sent with a request forwarded to the owner: the owner never forwards it again (no loops).</summary>
    public const string HeaderName = "X-ZcProxy-Peer";

    private readonly ConcurrentDictionary<string, long> _downUntil = new(StringComparer.Ordinal);
    private volatile IReadOnlyList<string> _fromEtcd = [];

    private volatile Normalized? _normalized;

    public CachePeersOptions? Options => runtime.Current.Cache?.Peers;

    /// <summary>The nodes keys are spread over: the configured list, else the one registered in etcd.</summary>
    public IReadOnlyList<string> Nodes => Current() is { } n ? (n.Nodes.Length > 0 ? n.Nodes : _fromEtcd) : [];

    /// <summary>The owner of <paramref name="key"/> when it is another node (its base URL, no trailing slash); null when this node owns it or peers are off.</summary>
    public string? RemoteOwner(string key)
    {
        if (Current() is not { } n) return null;
        long now = time.GetTimestamp();
        var owner = PeerRing.Owner(key, n.Nodes.Length > 0 ? n.Nodes : _fromEtcd, node => node == n.Self || !IsDown(node, now));
        return owner is null || owner == n.Self ? null : owner;
    }

    /// <summary>The options' URLs normalized once per configuration, not per request.</summary>
    private Normalized? Current()
    {
        if (Options is not { } options) return null;
        var n = _normalized;
        if (n is null || !ReferenceEquals(n.Options, options))
            _normalized = n = new Normalized(options, Normalize(options.Self), options.Nodes.Select(Normalize).Distinct(StringComparer.Ordinal).ToArray());
        return n;
    }

    private sealed record Normalized(CachePeersOptions Options, string Self, string[] Nodes);

    /// <summary>A connect to <paramref name="node"/> failed: its keys go elsewhere for FailTimeout.</summary>
    public void MarkDown(string node, string reason)
    {
        var failTimeout = Options?.FailTimeout ?? TimeSpan.FromSeconds(10);
        _downUntil[node] = time.GetTimestamp() + (long)(failTimeout.TotalSeconds * time.TimestampFrequency);
        LogPeerDown(node, failTimeout.TotalSeconds, reason);
    }

    /// <summary>The node list from etcd's {Prefix}peers/ keys (used when Cache.Peers.Nodes is empty).</summary>
    public void SetRegistered(IEnumerable<string> nodes)
    {
        var list = nodes.Select(Normalize).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        if (list.SequenceEqual(_fromEtcd)) return;
        _fromEtcd = list;
        LogNodes(list.Length, list); // the generated logger writes a list's items separated by commas
    }

    /// <summary>For GET {Admin}/status: this node, the node list and the nodes skipped now (null when peers are off).</summary>
    public object? Describe()
    {
        if (Current() is not { } n) return null;
        long now = time.GetTimestamp();
        var nodes = n.Nodes.Length > 0 ? n.Nodes : _fromEtcd;
        return new { self = n.Self, source = n.Nodes.Length > 0 ? "config" : "etcd", nodes, down = nodes.Where(node => node != n.Self && IsDown(node, now)).ToArray() };
    }

    private bool IsDown(string node, long now) => _downUntil.TryGetValue(node, out var until) && now < until;

    /// <summary>"http://10.0.1.1:8080/" and "HTTP://10.0.1.1:8080" are one node.</summary>
    public static string Normalize(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) ? uri.GetLeftPart(UriPartial.Authority).ToLowerInvariant() : url.TrimEnd('/');

    /// <summary>Why <paramref name="url"/> cannot name a node (Cache.Peers, etcd peers/ keys); null when it can.</summary>
    public static string? NodeUrlProblem(string? url)
    {
        if (string.IsNullOrWhiteSpace(url)) return "must be the node's proxy URL, http://IP:PORT";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
            return $"'{url}' is not an http://HOST:PORT URL (peers talk plain HTTP/1.1, so owners' answers can be spliced)";
        if (uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.UserInfo.Length > 0) return $"'{url}' must be http://HOST:PORT without a path, query or user";
        return null;
    }

    [LoggerMessage(EventId = 4020, Level = LogLevel.Warning, Message = "cache peer {Node} unreachable ({Reason}): its keys go to the other nodes for {Seconds} s")]
    private partial void LogPeerDown(string node, double seconds, string reason);

    [LoggerMessage(EventId = 4021, Level = LogLevel.Information, Message = "cache peers from etcd: {Count} nodes ({Nodes})")]
    private partial void LogNodes(int count, string[] nodes);
}
