using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// A Listen entry's "Protocols": which HTTP versions it serves. https listeners default to HTTP/1.1 and HTTP/2
/// (chosen by ALPN, nginx <c>listen ... ssl http2</c>); http listeners to HTTP/1.x, and with "Http1AndHttp2" they also
/// take cleartext HTTP/2 from clients with prior knowledge (h2c, as gRPC without TLS uses; nginx <c>listen ... http2</c>
/// without ssl), told apart by the connection preface.
/// </summary>
internal static class ListenerProtocols
{
    public static HttpProtocols? Parse(string? value, bool https, out string error)
    {
        error = "";
        if (value is null) return https ? HttpProtocols.Http1AndHttp2 : HttpProtocols.Http1;
        if (value.Equals("Http1", StringComparison.OrdinalIgnoreCase)) return HttpProtocols.Http1;
        if (value.Equals("Http2", StringComparison.OrdinalIgnoreCase)) return HttpProtocols.Http2;
        if (value.Equals("Http1AndHttp2", StringComparison.OrdinalIgnoreCase)) return HttpProtocols.Http1AndHttp2;
        error = $"'{value}' is not a protocol set: use \"Http1\", \"Http2\" or \"Http1AndHttp2\"";
        return null;
    }
}
