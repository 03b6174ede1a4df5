using System.Collections.Frozen;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// YARP's hop-by-hop list: the fields its forwarder never copies, from the client to the upstream nor back. The head
/// fast paths of routes with the default transforms (<see cref="DefaultRequestHead"/>, <see cref="DefaultResponseHead"/>)
/// drop the same names, so that they send what the transform path sends; the request side adds its own.
/// </summary>
internal static class HopByHopFields
{
    public static readonly FrozenSet<string> Names = new[]
    {
        "Connection", "Transfer-Encoding", "Keep-Alive", "Upgrade", "Proxy-Connection", "Proxy-Authenticate",
        "Proxy-Authentication-Info", "Proxy-Authorization", "Proxy-Features", "Proxy-Instruction", "Security-Scheme",
        "ALPN", "Close", "HTTP2-Settings", "Upgrade-Insecure-Requests", "TE", "Alt-Svc",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);
}
