using System.Net.Http.Headers;
using System.Text;

namespace ZcProxy.Core.Forwarding;

/// <summary>How the request body is framed towards the upstream.</summary>
internal enum RequestBodyFraming { None, ContentLength, Chunked }

/// <summary>
/// Serialises a transformed HttpRequestMessage as an HTTP/1.1 request head, the way HttpClient would put it on
/// the wire: Host from the transforms or the destination URI, then the headers the transforms produced.
/// Values are checked for CR, LF and NUL: a transform must not be able to split the request.
/// </summary>
internal static class RequestHeadWriter
{
    /// <param name="connection">A Connection field to send (an upgrade's "Upgrade"); the transforms' one is never sent.</param>
    public static byte[] Write(HttpRequestMessage request, RequestBodyFraming framing, string? connection = null)
    {
        var uri = request.RequestUri ?? throw new InvalidOperationException("the transformed request has no URI");
        var sb = new StringBuilder(512);
        sb.Append(request.Method.Method).Append(' ').Append(uri.PathAndQuery).Append(" HTTP/1.1\r\n");

        var host = request.Headers.Host ?? (uri.IsDefaultPort ? uri.IdnHost : $"{uri.IdnHost}:{uri.Port}");
        AppendField(sb, "Host", host);
        foreach (var header in request.Headers.NonValidated)
        {
            if (header.Key.Equals("Host", StringComparison.OrdinalIgnoreCase)
                || header.Key.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase)
                || header.Key.Equals("Connection", StringComparison.OrdinalIgnoreCase)) continue;
            AppendValues(sb, header.Key, header.Value);
        }
        if (connection is not null) AppendField(sb, "Connection", connection);
        bool wroteLength = false;
        if (request.Content is not null && framing != RequestBodyFraming.None)
        {
            foreach (var header in request.Content.Headers.NonValidated)
            {
                bool isLength = header.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase);
                if (isLength && framing != RequestBodyFraming.ContentLength) continue;
                wroteLength |= isLength;
                AppendValues(sb, header.Key, header.Value);
            }
        }
        if (framing == RequestBodyFraming.Chunked) AppendField(sb, "Transfer-Encoding", "chunked");
        else if (framing == RequestBodyFraming.ContentLength && !wroteLength)
            throw new InvalidOperationException("a transform removed the Content-Length of a request body");
        else if (framing == RequestBodyFraming.None && RequiresContentLength(request.Method)) AppendField(sb, "Content-Length", "0");
        sb.Append("\r\n");
        return Encoding.Latin1.GetBytes(sb.ToString());
    }

    // Like HttpClient: a bodiless POST/PUT/PATCH still says Content-Length: 0, which some origins insist on.
    private static bool RequiresContentLength(HttpMethod method)
        => method == HttpMethod.Post || method == HttpMethod.Put || method == HttpMethod.Patch;

    private static void AppendValues(StringBuilder sb, string name, HeaderStringValues values)
    {
        if (name.Equals("Cookie", StringComparison.OrdinalIgnoreCase))
        {
            AppendField(sb, name, string.Join("; ", values));
            return;
        }
        foreach (var value in values) AppendField(sb, name, value);
    }

    private static void AppendField(StringBuilder sb, string name, string value)
    {
        foreach (var c in name)
            if (c <= ' ' || c == ':' || c >= 0x7F) throw new InvalidOperationException($"invalid request header name '{name}'");
        foreach (var c in value)
            if (c is '\r' or '\n' or '\0' || c > 0xFF) throw new InvalidOperationException($"invalid character in request header '{name}'");
        sb.Append(name).Append(": ").Append(value).Append("\r\n");
    }
}
