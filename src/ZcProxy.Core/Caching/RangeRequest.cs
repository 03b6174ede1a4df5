using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace ZcProxy.Core.Caching;

/// <summary>
/// A single byte range (RFC 9110 §14) answered from a complete stored body. Several ranges are answered with
/// the whole body (200), which the RFC allows; If-Range that does not match (strong comparison) does the same.
/// </summary>
internal static class RangeRequest
{
    public enum Outcome { Full, Partial, Unsatisfiable }

    public static (Outcome Outcome, long Start, long Length) Evaluate(HttpRequest request, StoredResponse stored)
    {
        // Without a Range there is nothing to answer partially, and Last-Modified is not parsed (If-Range needs it).
        if (stored.Status != 200 || StringValues.IsNullOrEmpty(request.Headers.Range)) return (Outcome.Full, 0, stored.BodyLength);
        return Evaluate(request, stored.BodyLength, stored.Header("ETag"), HttpDate.Parse(stored.Header("Last-Modified")));
    }

    /// <summary>The same for any complete 200 representation of <paramref name="total"/> bytes with these validators (a static file).</summary>
    public static (Outcome Outcome, long Start, long Length) Evaluate(HttpRequest request, long total, string? etag, DateTimeOffset? lastModified)
    {
        var header = request.Headers.Range.ToString();
        if (!HttpMethods.IsGet(request.Method) || string.IsNullOrEmpty(header)) return (Outcome.Full, 0, total);
        if (request.Headers.IfRange.ToString() is { Length: > 0 } ifRange && !IfRangeMatches(ifRange.Trim(), etag, lastModified)) return (Outcome.Full, 0, total);
        if (!header.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase)) return (Outcome.Full, 0, total);
        var spec = header[6..].Trim();
        if (spec.Contains(',')) return (Outcome.Full, 0, total);
        int dash = spec.IndexOf('-');
        if (dash < 0) return (Outcome.Full, 0, total);
        var first = spec[..dash].Trim();
        var last = spec[(dash + 1)..].Trim();
        if (first.Length == 0)
        {
            if (!long.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out var suffix)) return (Outcome.Full, 0, total);
            if (suffix == 0 || total == 0) return (Outcome.Unsatisfiable, 0, 0);
            long n = Math.Min(suffix, total);
            return (Outcome.Partial, total - n, n);
        }
        if (!long.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out var start)) return (Outcome.Full, 0, total);
        long end = total - 1;
        if (last.Length > 0)
        {
            if (!long.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out end) || end < start) return (Outcome.Full, 0, total);
            end = Math.Min(end, total - 1);
        }
        if (start >= total) return (Outcome.Unsatisfiable, 0, 0);
        return (Outcome.Partial, start, end - start + 1);
    }

    private static bool IfRangeMatches(string ifRange, string? etag, DateTimeOffset? lastModified)
    {
        if (ifRange.StartsWith('"') || ifRange.StartsWith("W/", StringComparison.Ordinal))
            return ClientConditionals.EntityTagMatches([ifRange], etag, weak: false);
        var date = HttpDate.Parse(ifRange);
        return date is not null && lastModified is not null && date == lastModified;
    }
}
