using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Caching;

/// <summary>stale-while-revalidate (RFC 5861): the refresh that runs after the client got the stale answer.</summary>
internal sealed partial class CacheStep
{
    /// <summary>
    /// stale-while-revalidate's refresh, detached from the client's request (which is answered at once and whose
    /// connection moves on): a copy of the request goes through YARP's forwarder to one of the route's destinations,
    /// with the route's transforms; its response updates or replaces the entry and goes nowhere else.
    /// </summary>
    private bool StartBackgroundRefresh(HttpContext context, string key, IndexEntry indexEntry)
    {
        var proxy = context.Features.Get<IReverseProxyFeature>();
        if (proxy is null) return false;
        var destinations = proxy.AvailableDestinations.Count > 0 ? proxy.AvailableDestinations : proxy.AllDestinations;
        if (destinations.Count == 0) return false;
        var destination = destinations[Random.Shared.Next(destinations.Count)];
        var background = CopyRequest(context, proxy);
        var cluster = proxy.Cluster;
        var transformer = proxy.Route.Transformer;
        var ignored = CacheIgnoreHeaders.ForRoute(context);
        _ = Task.Run(async () =>
        {
            try
            {
                using var entry = await cache.OpenAsync(indexEntry);
                if (entry is null) return;
                var responseCc = CacheControl.ForResponse(entry.Response, ignored);
                await RevalidateAsync(background, async () =>
                {
                    await forwarder.SendAsync(background, destination.Model.Config.Address, cluster.HttpClient,
                        cluster.Config.HttpRequest ?? ForwarderRequestConfig.Empty, transformer);
                }, key, entry, CacheControl.Empty, responseCc, TimeSpan.MaxValue, background: true);
            }
            catch (Exception e)
            {
                LogRefreshFailed(key, e.Message);
            }
            finally
            {
                cache.Lock.Release(key + RefreshLockSuffix, true);
            }
        });
        return true;
    }

    private DefaultHttpContext CopyRequest(HttpContext context, IReverseProxyFeature proxy)
    {
        var copy = new DefaultHttpContext { RequestServices = services };
        copy.Features.Set<IHttpResponseBodyFeature>(new DiscardBodyFeature());
        copy.Features.Set(proxy);
        var from = context.Request;
        var to = copy.Request;
        to.Method = HttpMethods.Get;
        to.Protocol = from.Protocol;
        to.Scheme = from.Scheme;
        to.Host = from.Host;
        to.PathBase = from.PathBase;
        to.Path = from.Path;
        to.QueryString = from.QueryString;
        foreach (var (name, value) in from.Headers)
            if (name is not ("Content-Length" or "Transfer-Encoding" or "Expect") && !name.StartsWith("If-", StringComparison.OrdinalIgnoreCase) && name != "Range")
                to.Headers[name] = value;
        copy.Connection.RemoteIpAddress = context.Connection.RemoteIpAddress;
        copy.Connection.RemotePort = context.Connection.RemotePort;
        copy.Connection.LocalIpAddress = context.Connection.LocalIpAddress;
        copy.Connection.LocalPort = context.Connection.LocalPort;
        return copy;
    }
}
