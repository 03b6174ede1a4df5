using System.Collections.Concurrent;
using System.Net;
using System.Net.Http;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Forwarding;

namespace ZcProxy.Core.Caching.Peers;

/// <summary>
/// Sends a cache miss to the key's owner instead of the origin and streams the owner's answer through: over ZcProxy's
/// own forwarder when the client connection qualifies (large bodies spliced owner socket → pipe → client socket),
/// else through YARP's. An owner that cannot be connected to is skipped (see <see cref="CachePeers.MarkDown"/>) and
/// the key's next owner is tried; when this node is the owner the caller fills from the origin.
/// </summary>
internal sealed class PeerForwarder : IDisposable
{
    private readonly CachePeers _peers;
    private readonly IHttpForwarder _yarp;
    private readonly ZeroCopyForwarder _zeroCopy;
    private readonly Counter _forwarded, _unreachable, _received;
    private readonly Lock _clientLock = new();
    private readonly ConcurrentDictionary<string, DestinationConfig> _destinations = new(StringComparer.Ordinal);
    private (TimeSpan ConnectTimeout, HttpMessageInvoker Client)? _client;

    public PeerForwarder(CachePeers peers, IHttpForwarder yarp, IServiceProvider services, ProxyMetrics metrics)
    {
        _peers = peers;
        _yarp = yarp;
        // One zero-copy forwarder instance whose "next" (what it declines: TLS or HTTP/2 clients, ZeroCopy off) is YARP's forwarder to the same owner.
        _zeroCopy = ActivatorUtilities.CreateInstance<ZeroCopyForwarder>(services, (RequestDelegate)ForwardWithYarpAsync);
        var requests = metrics.Counters("zcproxy_cache_peer_requests_total",
            "Cache peers: misses forwarded to their owner node, owners found unreachable (the key went to the next node), requests received from other nodes.", "result");
        _forwarded = requests.WithLabels("forwarded");
        _unreachable = requests.WithLabels("unreachable");
        _received = requests.WithLabels("received");
    }

    public void CountReceived() => _received.Increment();

    /// <summary>True when the owner (another node) answered the client; false when this node is to fetch from the origin.</summary>
    public async Task<bool> TryForwardAsync(HttpContext context, string key)
    {
        for (int tries = 0; tries < 16 && _peers.RemoteOwner(key) is { } owner && _peers.Options is { } options; tries++)
        {
            var target = new PeerTarget(Destination(owner), new PeerTransformer(CachePeers.Normalize(options.Self)), options.ConnectTimeout);
            context.Features.Set(target);
            try { await _zeroCopy.ForwardToAsync(context, target.Destination, target.Transformer, target.ConnectTimeout); }
            finally { context.Features.Set<PeerTarget>(null); }
            if (!Unreachable(context, out var reason))
            {
                _forwarded.Increment();
                return true;
            }
            _unreachable.Increment();
            _peers.MarkDown(owner, reason);
            context.Features.Set<IForwarderErrorFeature>(null);
            context.Response.StatusCode = StatusCodes.Status200OK;
        }
        return false;
    }

    /// <summary>No byte reached the owner (connect refused or timed out) and nothing went to the client: safe to go elsewhere.</summary>
    private static bool Unreachable(HttpContext context, out string reason)
    {
        reason = "";
        if (context.Response.HasStarted || context.Features.Get<IForwarderErrorFeature>() is not { Error: ForwarderError.Request } error) return false;
        reason = error.Exception?.Message ?? "connect failed";
        return error switch
        {
            ZeroCopyForwarderErrorFeature zeroCopy => !zeroCopy.RequestSent,
            _ => error.Exception is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError },
        };
    }

    private async Task ForwardWithYarpAsync(HttpContext context)
    {
        var target = context.Features.Get<PeerTarget>()!;
        await _yarp.SendAsync(context, target.Destination.Address, Client(target.ConnectTimeout), ForwarderRequestConfig.Empty, target.Transformer);
    }

    private HttpMessageInvoker Client(TimeSpan connectTimeout)
    {
        lock (_clientLock)
        {
            if (_client is { } c && c.ConnectTimeout == connectTimeout) return c.Client;
            // The previous client (another ConnectTimeout, after a reload) is left to the GC: requests may still use it.
            var client = new HttpMessageInvoker(new SocketsHttpHandler
            {
                UseProxy = false, AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None, UseCookies = false,
                ConnectTimeout = connectTimeout, ActivityHeadersPropagator = null,
            }, disposeHandler: true);
            _client = (connectTimeout, client);
            return client;
        }
    }

    public void Dispose()
    {
        lock (_clientLock) _client?.Client.Dispose();
    }

    /// <summary>One config object per node: the zero-copy forwarder works out a destination's target once per config object.</summary>
    private DestinationConfig Destination(string node) => _destinations.GetOrAdd(node, n => new DestinationConfig { Address = n + "/" });

    private sealed record PeerTarget(DestinationConfig Destination, PeerTransformer Transformer, TimeSpan ConnectTimeout);
}
