using System.Text;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// The one decision on how header values become strings and back: one char per byte (Latin-1), everywhere.
/// RFC 9110 field values may carry any byte ≥ 0x80 (obs-text), and a proxy must pass them on unchanged, as nginx
/// and HAProxy do. Latin-1 is the only encoding that maps every byte to a char and back, so a value decoded by
/// Kestrel (client requests), SocketsHttpHandler or ResponseHeadParser (upstream responses) is written out by
/// RequestHeadWriter, SocketsHttpHandler or Kestrel as exactly the bytes that came in: UTF-8 stays UTF-8, a lone
/// Latin-1 byte stays that byte. The cache stores the same strings, so a hit sends the same bytes too.
/// </summary>
internal static class HeaderEncoding
{
    public static Encoding Bytes => Encoding.Latin1;

    /// <summary>Kestrel's RequestHeaderEncodingSelector (Content-Length: digits only, see <see cref="ContentLengthEncoding"/>).</summary>
    public static Encoding? ForRequestHeader(string name)
        => name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) ? ContentLengthEncoding.Instance : Bytes;

    /// <summary>Kestrel's ResponseHeaderEncodingSelector.</summary>
    public static Encoding? ForResponseHeader(string name) => Bytes;

    /// <summary>SocketsHttpHandler's Request/ResponseHeaderEncodingSelector (YARP's forwarder).</summary>
    public static Encoding? ForUpstreamHeader(string name, HttpRequestMessage request) => Bytes;
}
