using System.Net;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// X-Forwarded-For as nginx's <c>$proxy_add_x_forwarded_for</c>: the client's own X-Forwarded-For, if it sent one, with
/// the peer's address appended (YARP's default replaces the client's value with the peer's). Applied to every route
/// that leaves YARP's X-Forwarded defaults alone; X-Forwarded-Prefix/-Host/-Proto stay YARP's defaults (set) and
/// Forwarded is removed, as YARP does. One field, "client values, peer", on both forwarders (HttpClient would join
/// several values so, ZcProxy's head writer would write several lines); <see cref="DefaultRequestHead"/> writes the
/// same on the zero-copy fast path. A route with its own "X-Forwarded" transform gets exactly that ("Set" replaces).
/// </summary>
internal sealed class XForwardedForAppend : ITransformProvider
{
    public const string Field = "X-Forwarded-For";

    public void ValidateRoute(TransformRouteValidationContext context) { }

    public void ValidateCluster(TransformClusterValidationContext context) { }

    public void Apply(TransformBuilderContext context)
    {
        if (context.UseDefaultForwarders == false) return; // the route configured its X-Forwarded or Forwarded transforms
        context.UseDefaultForwarders = false;
        context.RequestTransforms.Add(new RequestFuncTransform(AppendPeer));
        context.AddXForwardedPrefix();
        context.AddXForwardedHost();
        context.AddXForwardedProto();
        context.AddRequestHeaderRemove("Forwarded");
    }

    private static ValueTask AppendPeer(RequestTransformContext context)
    {
        var value = Value(RequestTransform.TakeHeader(context, Field), context.HttpContext.Connection.RemoteIpAddress);
        if (value is not null) context.ProxyRequest.Headers.TryAddWithoutValidation(Field, value);
        return ValueTask.CompletedTask;
    }

    /// <summary>The field's value: the client's values, then the peer (an IPv4-mapped address as IPv4), comma-separated; null for neither.</summary>
    public static string? Value(StringValues client, IPAddress? peer)
    {
        var address = peer is null ? null : (peer.IsIPv4MappedToIPv6 ? peer.MapToIPv4() : peer).ToString();
        var parts = new List<string>(client.Count + 1);
        foreach (var value in client)
            if (!string.IsNullOrWhiteSpace(value)) parts.Add(value.Trim());
        if (address is not null) parts.Add(address);
        return parts.Count == 0 ? null : string.Join(", ", parts);
    }
}
