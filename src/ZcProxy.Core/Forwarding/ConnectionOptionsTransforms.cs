using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// RFC 9110 §7.6.1: the fields a message names in its Connection header are hop-by-hop, and a proxy removes
/// them before forwarding (YARP removes only the fixed hop-by-hop list). Applied to every route, first among its
/// transforms (so a route's own transform may still set such a name on purpose); both forwarders run the route's
/// transforms, and the cache stores what they leave, so one place covers both paths and the cache.
/// Framing fields are never removed: the message would no longer say where it ends.
/// </summary>
internal sealed class ConnectionOptionsTransforms : ITransformProvider
{
    private static readonly HashSet<string> Kept = new(StringComparer.OrdinalIgnoreCase)
    {
        "Content-Length", "Transfer-Encoding", "Host", "Upgrade",
    };

    public void ValidateRoute(TransformRouteValidationContext context) { }

    public void ValidateCluster(TransformClusterValidationContext context) { }

    public void Apply(TransformBuilderContext context)
    {
        context.RequestTransforms.Insert(0, new RequestFuncTransform(RemoveFromRequest));
        context.ResponseTransforms.Insert(0, new ResponseFuncTransform(RemoveFromResponse));
    }

    private static ValueTask RemoveFromRequest(RequestTransformContext context)
    {
        // Kestrel shortens "keep-alive, X-Hop" to "keep-alive": the field as sent comes from the request head tap.
        var connection = context.HttpContext.Find<ReceivedConnectionField>()?.Values ?? context.HttpContext.Request.Headers.Connection;
        foreach (var name in Options(connection))
        {
            context.ProxyRequest.Headers.Remove(name);
            context.ProxyRequest.Content?.Headers.Remove(name);
        }
        return ValueTask.CompletedTask;
    }

    private static ValueTask RemoveFromResponse(ResponseTransformContext context)
    {
        if (context.ProxyResponse?.Headers.NonValidated.TryGetValues("Connection", out var connection) == true)
            foreach (var name in Options(new StringValues([.. connection])))
                context.HttpContext.Response.Headers.Remove(name);
        return ValueTask.CompletedTask;
    }

    /// <summary>Whether Connection header values may name fields: false for none, "keep-alive" or "close" (the usual), without allocating.</summary>
    internal static bool MayNameFields(StringValues connection)
    {
        if (connection.Count == 0) return false;
        if (connection.Count > 1) return true;
        var value = connection[0].AsSpan().Trim(" \t");
        return !(value.IsEmpty || value.Equals("keep-alive", StringComparison.OrdinalIgnoreCase) || value.Equals("close", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The field names listed in Connection header values (close and keep-alive are options, not fields).</summary>
    internal static IEnumerable<string> Options(StringValues connection)
    {
        foreach (var value in connection)
        {
            if (string.IsNullOrEmpty(value)) continue;
            foreach (var part in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (part.Equals("close", StringComparison.OrdinalIgnoreCase) || part.Equals("keep-alive", StringComparison.OrdinalIgnoreCase)
                    || Kept.Contains(part) || !IsToken(part)) continue;
                yield return part;
            }
        }
    }

    private static bool IsToken(string text)
    {
        foreach (var c in text)
            if (c <= ' ' || c >= 0x7F || "\"(),/:;<=>?@[\\]{}".Contains(c)) return false;
        return true;
    }
}
