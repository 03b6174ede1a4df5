namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// The request's cache status (nginx's <c>$upstream_cache_status</c>: HIT, MISS, ...), set by the cache step and read by
/// the access log, the request span and the cache's metrics. A request feature rather than an <c>HttpContext.Items</c>
/// entry: merely reading Items creates its dictionary, which cost every logged request an allocation.
/// </summary>
internal sealed class CacheStatusFeature(string status)
{
    public string Status { get; set; } = status;

    public static string? Of(Microsoft.AspNetCore.Http.HttpContext context) => context.Features.Get<CacheStatusFeature>()?.Status;

    public static void Set(Microsoft.AspNetCore.Http.HttpContext context, string status)
    {
        if (context.Features.Get<CacheStatusFeature>() is { } feature) feature.Status = status;
        else context.Features.Set(new CacheStatusFeature(status));
    }
}
