using System.Text;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// Forwards an upstream's interim (1xx) responses, 103 Early Hints above all, to the client before the final one, as
/// HAProxy does (RFC 9110 §15.2: a proxy forwards them unless the client is HTTP/1.0). Not 100 Continue: Kestrel
/// answers the client's Expect itself, and the forwarder sends request bodies without waiting for the upstream's;
/// not 101, which only an upgrade may get. Only on zero-copy connections, whose writer can put a head on the socket
/// ahead of Kestrel's (<see cref="ZeroCopyOutputWriter.SendInterimAsync"/>); never stored (the cache sees only the
/// final response). YARP's path cannot do it: SocketsHttpHandler consumes 1xx responses without a callback.
/// </summary>
internal static class InterimResponses
{
    /// <summary>Fields an interim head does not carry on: hop-by-hop ones and framing (a 1xx has no content).</summary>
    private static readonly HashSet<string> NotForwarded = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length",
    };

    /// <summary>The state for <see cref="ForwardAsync"/>, or null when this client must not get interim responses.</summary>
    public static HttpContext? Recipient(HttpContext context)
        => HttpProtocol.IsHttp11(context.Request.Protocol) && context.Find<ZeroCopyConnection>() is not null ? context : null;

    /// <summary>A callback for <see cref="UpstreamConnection.ReadResponseHeadAsync"/>, its state the client's HttpContext.</summary>
    public static async ValueTask ForwardAsync(ResponseHead head, object? state)
    {
        var context = (HttpContext)state!;
        if (head.StatusCode == StatusCodes.Status100Continue || context.Response.HasStarted) return;
        if (context.Find<ZeroCopyConnection>() is not { } connection) return;
        try { await connection.Output.SendInterimAsync(Serialize(head), context.RequestAborted); }
        catch (OperationCanceledException) { } // the client went away; the forwarder notices it on its own
    }

    internal static byte[] Serialize(ResponseHead head)
    {
        var named = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in head.Headers)
            if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
                foreach (var option in ConnectionOptionsTransforms.Options(value)) named.Add(option);
        var sb = new StringBuilder(256);
        sb.Append("HTTP/1.1 ").Append(head.StatusCode).Append(' ').Append(head.ReasonPhrase).Append("\r\n");
        foreach (var (name, value) in head.Headers)
            if (!NotForwarded.Contains(name) && !named.Contains(name)) sb.Append(name).Append(": ").Append(value).Append("\r\n");
        sb.Append("\r\n");
        return HeaderEncoding.Bytes.GetBytes(sb.ToString());
    }
}
