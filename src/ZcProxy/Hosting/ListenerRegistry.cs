using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ZcProxy.Hosting;

/// <summary>The listeners Kestrel was given, to read their bound endpoints after start (port 0 resolves then).</summary>
internal sealed class ListenerRegistry
{
    public List<ListenOptions> Proxy { get; } = [];
    /// <summary>The proxy listeners that terminate TLS.</summary>
    public HashSet<ListenOptions> Https { get; } = [];
    public ListenOptions? Admin { get; set; }

    /// <summary>Listeners served from a socket systemd passed (LISTEN_FDS), with its fd; the rest were bound by Kestrel.</summary>
    public Dictionary<ListenOptions, int> SocketActivated { get; } = [];

    public IReadOnlyList<IPEndPoint> ProxyEndPoints => Proxy.Select(l => l.IPEndPoint!).ToList();
    /// <summary>Each proxy listener as a URL (https:// for TLS ones), in Listen order.</summary>
    public IReadOnlyList<string> ProxyUrls => Proxy.Select(l => $"{(Https.Contains(l) ? "https" : "http")}://{l.IPEndPoint}").ToList();
    public IPEndPoint? AdminEndPoint => Admin?.IPEndPoint;
}
