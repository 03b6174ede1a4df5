using System.Net.Http;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace ZcProxy.Core.Caching.Peers;

/// <summary>
/// The request a node sends to a key's owner: the client's request as it arrived (target as the client encoded it,
/// Host and every other field; no route transforms, which the owner applies itself towards the origin), so that the
/// owner computes the same cache key, plus the loop-preventing header and the client's address in X-Forwarded-For.
/// </summary>
internal sealed class PeerTransformer(string self) : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix,
        CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken); // copies Host too
        proxyRequest.Headers.Remove(CachePeers.HeaderName);
        proxyRequest.Headers.TryAddWithoutValidation(CachePeers.HeaderName, self);
        if (httpContext.Connection.RemoteIpAddress is { } client)
        {
            var forwarded = httpContext.Request.Headers["X-Forwarded-For"].ToString();
            proxyRequest.Headers.Remove("X-Forwarded-For");
            proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-For", forwarded.Length > 0 ? $"{forwarded}, {client}" : client.ToString());
        }
        var request = httpContext.Request;
        var rawTarget = httpContext.Features.Get<IHttpRequestFeature>()?.RawTarget;
        var target = rawTarget is { Length: > 0 } && rawTarget[0] == '/' ? rawTarget : (request.PathBase + request.Path).ToUriComponent() + request.QueryString.ToUriComponent();
        // Without canonicalization System.Uri keeps the target exactly as the client sent it ("%41" stays "%41").
        proxyRequest.RequestUri = new Uri(destinationPrefix.TrimEnd('/') + target, new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });
    }
}
