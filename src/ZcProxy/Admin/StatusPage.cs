namespace ZcProxy.Admin;

/// <summary>
/// GET {Admin}/: the status page (HAProxy's stats page), plain HTML, CSS and one script embedded in the binary
/// (Admin/StatusPage/), so it works on a node without internet access. The script reads GET status every second and
/// sends the runtime API's POSTs as same-origin requests, which the admin guard lets through (with the bearer token
/// the operator types, when one is set). The content security policy keeps the page to its own files and forbids
/// framing it (no clickjacking of the drain buttons).
/// </summary>
internal static class StatusPage
{
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

    private static readonly (string Path, string Resource, string ContentType)[] Files =
    [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/ui/status.js", "status.js", "text/javascript; charset=utf-8"),
        ("/ui/status.css", "status.css", "text/css; charset=utf-8"),
    ];

    public static void MapStatusPage(this IEndpointRouteBuilder e)
    {
        foreach (var (path, resource, contentType) in Files)
        {
            var bytes = Read(resource);
            e.MapGet(path, (HttpContext context) =>
            {
                context.Response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
                context.Response.Headers.XContentTypeOptions = "nosniff";
                context.Response.Headers.CacheControl = "no-cache";
                return Results.Bytes(bytes, contentType);
            });
        }
    }

    private static byte[] Read(string name)
    {
        using var stream = typeof(StatusPage).Assembly.GetManifestResourceStream("ZcProxy.Admin.StatusPage." + name)
            ?? throw new InvalidOperationException($"the status page's {name} is not embedded in the binary");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
