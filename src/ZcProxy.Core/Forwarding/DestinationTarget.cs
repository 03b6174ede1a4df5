using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Configuration;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// What the zero-copy forwarder needs to know about a destination, worked out once per destination config instead of
/// once per request: its address as a URI, the upstream pool's key, and for the request-head fast path
/// (<see cref="DefaultRequestHead"/>) the Host field and the path the address puts in front of every request path.
/// A reload makes new DestinationConfig objects, so a changed address is never served from a stale entry.
/// </summary>
internal sealed class DestinationTarget
{
    private static readonly ConditionalWeakTable<DestinationConfig, DestinationTarget?> Cache = new();

    private DestinationTarget(Uri uri, string address, string? configHost)
    {
        Uri = uri;
        PoolKey = $"{uri.IdnHost}:{uri.Port}";
        // What RequestHeadWriter writes for a transformed request: the Host the transforms left (YARP's default sets the
        // destination's configured Host, else none), else the target URI's authority.
        HostField = configHost ?? (uri.IsDefaultPort ? uri.IdnHost : $"{uri.IdnHost}:{uri.Port}");
        // An empty configured Host is left to the transform path, which decides what that means.
        PathPrefix = configHost is { Length: 0 } ? null : PathPrefixOf(address);
    }

    public Uri Uri { get; }
    public string PoolKey { get; }
    public string HostField { get; }

    /// <summary>
    /// The address's path without its trailing slash ("" for "http://host:port/"), as it starts the upstream request target;
    /// null when the fast path steps aside for this destination: the address has a query or fragment, its path needs
    /// escaping or has dot segments, or its configured Host is empty.
    /// </summary>
    public string? PathPrefix { get; }

    /// <summary>The target of a plaintext http:// destination; null for any other address (https, malformed).</summary>
    public static DestinationTarget? For(DestinationConfig config)
    {
        if (Cache.TryGetValue(config, out var known)) return known;
        var created = Create(config);
        Cache.AddOrUpdate(config, created);
        return created;
    }

    private static DestinationTarget? Create(DestinationConfig config)
    {
        if (config.Address is not { } address || !Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp) return null;
        return new DestinationTarget(uri, address, config.Host);
    }

    private static string? PathPrefixOf(string address)
    {
        int authority = address.IndexOf("://", StringComparison.Ordinal);
        if (authority < 0) return null;
        int path = address.IndexOf('/', authority + 3);
        if (address.AsSpan(authority + 3).IndexOfAny('?', '#') >= 0) return null;
        if (path < 0) return "";
        var prefix = address.AsSpan(path);
        if (prefix.EndsWith("/")) prefix = prefix[..^1];
        foreach (var c in prefix)
            if (c is <= ' ' or >= (char)0x7F or '%' or '\\') return null;
        // Dot segments in the address itself are left to System.Uri's rules on the transform path.
        if (prefix.Contains("/.", StringComparison.Ordinal)) return null;
        return prefix.ToString();
    }
}
