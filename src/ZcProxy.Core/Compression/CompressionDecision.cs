using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace ZcProxy.Core.Compression;

/// <summary>Whether a response may be compressed, decided once its status and headers are final (the one place that says so).</summary>
internal static class CompressionDecision
{
    /// <summary>
    /// True for a response worth compressing: it has a body (not HEAD, 204, 206, 304), is not encoded already, its media
    /// type is in the route's list, the origin did not forbid transforming it (Cache-Control: no-transform), and it is
    /// either of unknown length (chunked, never moved in the kernel) or between <see cref="CompressionSettings.MinLength"/>
    /// and <paramref name="zeroCopyFrom"/> (ZeroCopy.SpliceThreshold): a longer body goes out by splice or sendfile,
    /// which compressing would defeat. The same rule on both forwarding paths, so a response does not change with ZeroCopy.Enabled.
    /// </summary>
    public static bool IsCompressible(HttpContext context, CompressionSettings settings, long zeroCopyFrom)
    {
        var response = context.Response;
        if (HttpMethods.IsHead(context.Request.Method)) return false;
        if (response.StatusCode is < 200 or StatusCodes.Status204NoContent or StatusCodes.Status206PartialContent or StatusCodes.Status304NotModified) return false;
        var headers = response.Headers;
        if (headers.ContentEncoding.Count > 0 && !string.Equals(headers.ContentEncoding.ToString(), "identity", StringComparison.OrdinalIgnoreCase)) return false;
        if (headers.ContentRange.Count > 0) return false;
        if (response.ContentLength is { } length && (length < CompressionSettings.MinLength || length >= zeroCopyFrom)) return false;
        if (!MediaTypeHeaderValue.TryParse(response.ContentType, out var type) || !settings.Types.Contains(type.MediaType.ToString())) return false;
        return !CacheControlHeaderValue.TryParse(headers.CacheControl.ToString(), out var cacheControl) || !cacheControl.NoTransform;
    }
}
