using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace ZcProxy.Core.Caching;

/// <summary>Which response fields are stored (RFC 9111 §3.1) and how Vary selects a variant (§4.1).</summary>
internal static class StoredHead
{
    private static readonly HashSet<string> NeverStored = new(StringComparer.OrdinalIgnoreCase)
    {
        // hop-by-hop (RFC 9110 §7.6.1)
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authentication-Info", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade",
        // recomputed or per-client
        "Content-Length", CacheStatus.HeaderName,
    };

    /// <param name="storesCookies">
    /// The route's CacheIgnoreHeaders names Set-Cookie: the cookie is stored and served with the entry (RFC 9111 §3.1).
    /// Otherwise a cookie set for one client is never handed to another (only responses whose origin withheld it get here).
    /// </param>
    public static bool IsStorable(string name, IHeaderDictionary headers, bool storesCookies = false)
    {
        if (NeverStored.Contains(name)) return false;
        if (!storesCookies && CacheIgnoreHeaders.CookieFields.Contains(name, StringComparer.OrdinalIgnoreCase)) return false;
        foreach (var connection in headers.Connection)
            if (connection is not null && connection.Split(',').Any(t => t.Trim().Equals(name, StringComparison.OrdinalIgnoreCase))) return false;
        return true;
    }

    public static StoredResponse From(HttpContext context, string key, DateTimeOffset requestTime, DateTimeOffset responseTime, long bodyLength,
        bool storesCookies = false)
    {
        var response = context.Response;
        var headers = new List<(string, string)>();
        var withheld = new HashSet<string>(CacheControl.ForResponse(response.Headers).WithheldFields(), StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in response.Headers)
        {
            if (!IsStorable(name, response.Headers, storesCookies) || withheld.Contains(name)) continue;
            foreach (var v in values) if (v is not null) headers.Add((name, v));
        }
        var varyNames = response.Headers.Vary
            .SelectMany(v => (v ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Select(n => n.ToLowerInvariant()).Distinct().Order(StringComparer.Ordinal);
        var vary = varyNames.Select(n => (n, Normalize(context.Request.Headers[n]))).ToList();
        return new StoredResponse
        {
            Key = key, Vary = vary, Status = response.StatusCode, RequestTime = requestTime, ResponseTime = responseTime,
            BodyLength = bodyLength, Headers = headers,
        };
    }

    /// <summary>§4.1: every field the stored response's Vary names has the same (normalized) value in the new request.</summary>
    public static bool VaryMatches(IReadOnlyList<(string Name, string Value)> vary, HttpRequest request)
    {
        foreach (var (name, value) in vary)
            if (name == "*" || Normalize(request.Headers[name]) != value) return false;
        return true;
    }

    /// <summary>Combines field lines and trims whitespace around list members, as §4.1 allows.</summary>
    private static string Normalize(StringValues values)
        => string.Join(",", values.SelectMany(v => (v ?? "").Split(',')).Select(s => s.Trim()).Where(s => s.Length > 0));
}
