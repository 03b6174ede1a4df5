using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// Decides, per request, whether ZcProxy's HTTP/1.1 forwarder handles it. Everything else (TLS or HTTP/2
/// clients, upgrades and CONNECT, https or HTTP/2-only destinations) goes to YARP's forwarder.
/// </summary>
internal static class ZeroCopyEligibility
{
    public static bool ClientQualifies(HttpContext context)
    {
        var request = context.Request;
        if (!HttpProtocol.IsHttp11(request.Protocol) && !HttpProtocol.IsHttp10(request.Protocol)) return false;
        if (request.IsHttps || context.Features.Get<ITlsConnectionFeature>() is not null) return false;
        if (HttpMethods.IsConnect(request.Method)) return false;
        if (context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true) return false;
        if (request.Headers.ContainsKey("Upgrade")) return false;
        return true;
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
