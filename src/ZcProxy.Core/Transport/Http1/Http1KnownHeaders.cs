using Microsoft.Net.Http.Headers;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>Request field names as one string each (no string per field per request for the common ones).</summary>
internal static class Http1KnownHeaders
{
    public const string Http2Settings = "HTTP2-Settings";

    private static readonly string[] s_names =
    [
        HeaderNames.Host, HeaderNames.UserAgent, HeaderNames.Accept, HeaderNames.AcceptEncoding, HeaderNames.AcceptLanguage,
        HeaderNames.Connection, HeaderNames.ContentLength, HeaderNames.ContentType, HeaderNames.Cookie, HeaderNames.Authorization,
        HeaderNames.CacheControl, HeaderNames.Pragma, HeaderNames.Referer, HeaderNames.Origin, HeaderNames.IfNoneMatch,
        HeaderNames.IfModifiedSince, HeaderNames.Range, HeaderNames.IfRange, HeaderNames.IfMatch, HeaderNames.IfUnmodifiedSince,
        HeaderNames.TransferEncoding, HeaderNames.Expect, HeaderNames.Upgrade, HeaderNames.TE, "X-Forwarded-For",
        "X-Forwarded-Proto", "X-Forwarded-Host", HeaderNames.TraceParent, HeaderNames.TraceState,
        HeaderNames.KeepAlive, HeaderNames.ProxyAuthorization, HeaderNames.Via, HeaderNames.Date, HeaderNames.ContentEncoding,
        Http2Settings,
    ];

    public static int Count => s_names.Length;

    public static string Name(int index) => s_names[index];

    /// <summary>The index of a known field name (case-insensitive), or -1.</summary>
    public static int IndexOf(ReadOnlySpan<byte> name)
    {
        var names = s_names;
        for (int i = 0; i < names.Length; i++)
            if (names[i].Length == name.Length && System.Text.Ascii.EqualsIgnoreCase(name, names[i])) return i;
        return -1;
    }
}
