using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace ZcProxy.Core.Compression;

/// <summary>The codings ZcProxy compresses with.</summary>
internal enum ContentCoding
{
    None,
    Gzip,
    Brotli,
}

internal static class ContentCodings
{
    /// <summary>
    /// The coding for a request's Accept-Encoding (RFC 9110 §12.5.3): the acceptable one (q above 0) with the highest q,
    /// brotli before gzip at equal q (smaller output); <c>*</c> stands for a coding not named; None when neither is acceptable.
    /// </summary>
    public static ContentCoding Choose(StringValues acceptEncoding)
    {
        if (StringValues.IsNullOrEmpty(acceptEncoding) || !StringWithQualityHeaderValue.TryParseList(acceptEncoding, out var values)) return ContentCoding.None;
        double gzip = -1, brotli = -1, any = -1;
        foreach (var value in values)
        {
            double q = value.Quality ?? 1;
            var name = value.Value.AsSpan();
            if (name.Equals("gzip", StringComparison.OrdinalIgnoreCase) || name.Equals("x-gzip", StringComparison.OrdinalIgnoreCase)) gzip = Math.Max(gzip, q);
            else if (name.Equals("br", StringComparison.OrdinalIgnoreCase)) brotli = Math.Max(brotli, q);
            else if (name.Equals("*", StringComparison.Ordinal)) any = Math.Max(any, q);
        }
        if (gzip < 0) gzip = any;
        if (brotli < 0) brotli = any;
        if (brotli > 0 && brotli >= gzip) return ContentCoding.Brotli;
        return gzip > 0 ? ContentCoding.Gzip : ContentCoding.None;
    }

    public static string Name(ContentCoding coding) => coding == ContentCoding.Brotli ? "br" : "gzip";
}
