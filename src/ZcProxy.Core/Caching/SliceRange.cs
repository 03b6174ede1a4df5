using System.Globalization;

namespace ZcProxy.Core.Caching;

/// <summary>
/// Slice storage (nginx's <c>slice</c> module): a large object is fetched and stored as aligned slices of
/// Cache.SliceSize, each a cache entry of its own under <see cref="KeyOf"/> holding the origin's 206 for
/// <c>Range: bytes=i*size-(i+1)*size-1</c>. What the slices of one object must agree on is <see cref="Identity"/>.
/// </summary>
internal static class SliceRange
{
    /// <summary>The cache key of slice <paramref name="index"/> of <paramref name="key"/> (nginx: <c>$uri$slice_range</c>).</summary>
    public static string KeyOf(string key, long index) => string.Create(CultureInfo.InvariantCulture, $"{key}\n#slice={index}");

    /// <summary>The Range header a slice is fetched with.</summary>
    public static string RequestHeader(long index, long size) => string.Create(CultureInfo.InvariantCulture, $"bytes={index * size}-{(index + 1) * size - 1}");

    /// <summary>One object's version as its slices saw it: the whole length from Content-Range, and its validators.</summary>
    public readonly record struct Identity(long Total, string? ETag, string? LastModified);

    /// <summary>A stored slice's identity, from its Content-Range ("bytes a-b/total"), ETag and Last-Modified; null when it has none.</summary>
    public static Identity? Of(StoredResponse slice)
        => ParseContentRange(slice.Header("Content-Range")) is { } range ? new Identity(range.Total, slice.Header("ETag"), slice.Header("Last-Modified")) : null;

    /// <summary>
    /// "bytes first-last/total" (RFC 9110 §14.4) with a known total; null otherwise (an unsatisfied range's
    /// "bytes */total" is <see cref="UnsatisfiedTotal"/>).
    /// </summary>
    public static (long First, long Last, long Total)? ParseContentRange(string? value)
    {
        if (value is null || !value.StartsWith("bytes ", StringComparison.OrdinalIgnoreCase)) return null;
        var spec = value[6..].Trim();
        int dash = spec.IndexOf('-'), slash = spec.IndexOf('/');
        if (dash <= 0 || slash < dash) return null;
        if (!long.TryParse(spec[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            || !long.TryParse(spec[(dash + 1)..slash], NumberStyles.None, CultureInfo.InvariantCulture, out var last)
            || !long.TryParse(spec[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var total)
            || last < first || last >= total) return null;
        return (first, last, total);
    }

    /// <summary>The total of a 416's "bytes */total"; null when absent.</summary>
    public static long? UnsatisfiedTotal(string? value)
        => value is not null && value.StartsWith("bytes */", StringComparison.OrdinalIgnoreCase)
           && long.TryParse(value.AsSpan(8).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var total) ? total : null;

    /// <summary>
    /// The first byte a single "bytes=" range asks for, without knowing the length: null for a suffix range
    /// ("bytes=-500", which needs the length first); false for anything slices do not serve (several ranges, other units).
    /// </summary>
    public static bool TryFirstByte(string header, out long? first)
    {
        first = null;
        if (!header.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase)) return false;
        var spec = header[6..].Trim();
        int dash = spec.IndexOf('-');
        if (spec.Contains(',') || dash < 0) return false;
        if (dash == 0) return true;
        if (!long.TryParse(spec[..dash].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var start)) return false;
        first = start;
        return true;
    }
}
