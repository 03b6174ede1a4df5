using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// Decides, per request, whether ZcProxy's HTTP/1.1 forwarder handles it. Everything else (TLS or HTTP/2
/// clients, CONNECT, h2c upgrades, upgrades on connections it cannot tunnel, https or HTTP/2-only destinations) goes to
/// YARP's forwarder.
/// </summary>
internal static class ZeroCopyEligibility
{
    public static bool ClientQualifies(HttpContext context)
    {
        var request = context.Request;
        if (!HttpProtocol.IsHttp11(request.Protocol) && !HttpProtocol.IsHttp10(request.Protocol)) return false;
        if (request.IsHttps || context.Find<ITlsConnectionFeature>() is not null) return false;
        if (HttpMethods.IsConnect(request.Method)) return false;
        if (request.Headers.ContainsKey("Upgrade") || context.Find<IHttpUpgradeFeature>()?.IsUpgradableRequest == true)
            return TunnelableUpgrade(context) is not null;
        return true;
    }

    /// <summary>
    /// The protocol a request asks to upgrade to (the Upgrade field: "websocket", ...) when ZcProxy can tunnel it after a
    /// 101: an upgradable HTTP/1.1 request without a body, on a zero-copy connection (whose socket the tunnel splices),
    /// and not h2c (HTTP/2 over cleartext is refused, as YARP does). Null otherwise.
    /// </summary>
    public static string? TunnelableUpgrade(HttpContext context)
    {
        var request = context.Request;
        if (context.Find<IHttpUpgradeFeature>()?.IsUpgradableRequest != true || context.Find<Transport.ZeroCopyConnection>() is null) return null;
        if (request.ContentLength > 0 || request.Headers.ContainsKey("Transfer-Encoding")) return null;
        var upgrade = request.Headers.Upgrade.ToString();
        if (upgrade.Length == 0 || upgrade.Split(',').Any(p => p.Trim().Equals("h2c", StringComparison.OrdinalIgnoreCase))) return null;
        return upgrade;
    }

    /// <summary>A plaintext http:// destination that YARP would talk HTTP/1.1 to (no h2c demanded by the cluster).</summary>
    public static bool DestinationQualifies(DestinationConfig destination, ForwarderRequestConfig? requestConfig, out DestinationTarget? target)
    {
        target = null;
        if (requestConfig?.Version is { Major: >= 2 } && requestConfig.VersionPolicy is System.Net.Http.HttpVersionPolicy.RequestVersionExact
            or System.Net.Http.HttpVersionPolicy.RequestVersionOrHigher) return false;
        target = DestinationTarget.For(destination);
        return target is not null;
    }
}
