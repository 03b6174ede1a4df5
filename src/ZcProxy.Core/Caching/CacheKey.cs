using System.Text;
using Microsoft.AspNetCore.Http;

namespace ZcProxy.Core.Caching;

/// <summary>
/// The cache key from the configured template (nginx's proxy_cache_key). The key is only ever hashed into a file
/// name, so its text (../, NUL, anything) cannot reach the file system.
/// </summary>
internal static class CacheKey
{
    public static readonly string[] Placeholders = ["scheme", "host", "uri", "path", "query", "method"];

    public static string For(string template, HttpRequest request)
        => Build(template, request.Scheme, request.Host.Value ?? "", request.Path.Value ?? "/", request.QueryString.Value ?? "", request.Method);

    /// <summary>The key of an absolute URL (invalidation by Location/Content-Location, admin purge), as a GET would have it.</summary>
    public static string For(string template, Uri url)
        => Build(template, url.Scheme, url.IsDefaultPort ? url.Host : $"{url.Host}:{url.Port}",
            PathString.FromUriComponent(url).Value ?? "/", QueryString.FromUriComponent(url).Value ?? "", "GET"); // decoded as Kestrel decodes a request path

    private static string Build(string template, string scheme, string host, string path, string query, string method)
    {
        var sb = new StringBuilder(template.Length + path.Length + query.Length + host.Length);
        int i = 0;
        while (i < template.Length)
        {
            int open = template.IndexOf('{', i);
            if (open < 0) { sb.Append(template, i, template.Length - i); break; }
            int close = template.IndexOf('}', open);
            if (close < 0) { sb.Append(template, i, template.Length - i); break; }
            sb.Append(template, i, open - i);
            sb.Append(template.AsSpan(open + 1, close - open - 1) switch
            {
                "scheme" => scheme.ToLowerInvariant(),
                "host" => host.ToLowerInvariant(),
                "uri" => path + query,
                "path" => path,
                "query" => query,
                "method" => method.ToUpperInvariant(),
                _ => template.Substring(open, close - open + 1),
            });
            i = close + 1;
        }
        return sb.ToString();
    }
}
