using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ZcProxy.Core.Caching;

/// <summary>
/// The cache key from the configured template (nginx's proxy_cache_key). The key is only ever hashed into a file
/// name, so its text (../, NUL, anything) cannot reach the file system.
/// <para>
/// Path and query are the request target as the client sent it (nginx's <c>$request_uri</c>), never Kestrel's decoded
/// path: decoding would give <c>/k%3Fx=1</c> and <c>/k?x=1</c>, or <c>/a%2Fb</c> and <c>/a%252Fb</c>, one key although
/// the origin sees two resources, and one of them could fill the entry the other is served from. The only
/// normalisation is one RFC 3986 (§6.2.2.1, §2.1) makes equivalent: hex digits of percent-encodings upper-cased
/// (<c>%2f</c> = <c>%2F</c>), and space and non-ASCII characters (which no received target holds raw) percent-encoded
/// as UTF-8.
/// Nothing is decoded.
/// </para>
/// </summary>
internal static class CacheKey
{
    public static readonly string[] Placeholders = ["scheme", "host", "uri", "path", "query", "method"];

    /// <summary>The key of a request; <paramref name="method"/> overrides the request's (invalidation keys the GET).</summary>
    public static string For(string template, HttpRequest request, string? method = null)
    {
        var (path, query) = Split(Canonical(TargetOf(request)));
        return Build(template, request.Scheme, request.Host.Value ?? "", path, query, method ?? request.Method);
    }

    /// <summary>
    /// The key of an absolute http(s) URL given as text (admin purge), as a GET for it would have it: the path and
    /// query are taken from the text as written, percent-encodings kept. Null when the text is not such a URL.
    /// </summary>
    public static string? ForUrl(string template, string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")) return null;
        var (path, query) = Split(Canonical(StripFragment(TargetOfAbsolute(url)))); // clients never send the fragment
        return Build(template, uri.Scheme, HostOf(uri), path, query, "GET");
    }

    /// <summary>
    /// RFC 9111 §4.4: the key of a URI reference from Location or Content-Location, resolved against the request,
    /// as a GET would have it; null when it names another origin (one site cannot purge another's entries).
    /// </summary>
    public static string? ForReference(string template, HttpRequest request, string reference)
    {
        reference = reference.Trim();
        if (reference.Length == 0) return null;
        if (reference[0] == '/' && !reference.StartsWith("//", StringComparison.Ordinal))
        {
            // Absolute path (the usual form): same origin, taken as written.
            var (path, query) = Split(Canonical(StripFragment(reference)));
            return Build(template, request.Scheme, request.Host.Value ?? "", path, query, "GET");
        }
        if (!Uri.TryCreate($"{request.Scheme}://{request.Host}/", UriKind.Absolute, out var origin)) return null;
        string? key;
        Uri? resolved;
        if (Uri.TryCreate(reference, UriKind.Absolute, out resolved))
            key = ForUrl(template, reference);
        else
        {
            // A relative-path or network-path reference, resolved by Uri (which decodes unreserved characters: such a
            // key can fail to match the stored one, never match another resource's).
            if (!Uri.TryCreate(origin, Split(TargetOf(request)).Path, out var requestUri) || !Uri.TryCreate(requestUri, reference, out resolved))
                return null;
            var (path, query) = Split(Canonical(resolved.GetComponents(UriComponents.PathAndQuery, UriFormat.UriEscaped)));
            key = Build(template, resolved.Scheme, HostOf(resolved), path, query, "GET");
        }
        bool sameOrigin = resolved.Scheme == origin.Scheme && string.Equals(resolved.Authority, origin.Authority, StringComparison.OrdinalIgnoreCase);
        return sameOrigin ? key : null;
    }

    /// <summary>The request target as received; origin-form, or the path and query of an absolute-form target.</summary>
    internal static string TargetOf(HttpRequest request)
    {
        var raw = request.HttpContext.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (!string.IsNullOrEmpty(raw))
        {
            if (raw[0] == '/') return raw;
            if (raw.Contains("://", StringComparison.Ordinal)) return TargetOfAbsolute(raw);
        }
        // No raw target (a request made in process): the encoded form of what Kestrel decoded.
        return request.PathBase.Add(request.Path).ToUriComponent() + request.QueryString.Value;
    }

    /// <summary>What follows the authority of "scheme://authority/path?query", as written; "/" when the path is empty.</summary>
    private static string TargetOfAbsolute(string url)
    {
        int start = url.IndexOf("://", StringComparison.Ordinal) + 3;
        int end = url.IndexOfAny(['/', '?', '#'], start);
        if (end < 0) return "/";
        return url[end] == '/' ? url[end..] : "/" + url[end..];
    }

    private static string StripFragment(string target)
    {
        int hash = target.IndexOf('#');
        return hash < 0 ? target : target[..hash];
    }

    private static string HostOf(Uri uri) => uri.IsDefaultPort ? uri.Host : $"{uri.Host}:{uri.Port}";

    private static (string Path, string Query) Split(string target)
    {
        int q = target.IndexOf('?');
        return q < 0 ? (target, "") : (target[..q], target[q..]);
    }

    /// <summary>
    /// Upper-cases the hex digits of percent-encodings and percent-encodes (UTF-8) space and non-ASCII characters.
    /// Both are RFC 3986 equivalences, and neither can make two received targets equal: no received target holds a
    /// raw space or non-ASCII byte (Kestrel answers 400), so encoding them only matters for URLs an operator types.
    /// Everything else (a raw '#', '|', tab... which Kestrel accepts) is kept as it is: nothing is decoded or encoded
    /// that could then equal another target's bytes.
    /// </summary>
    internal static string Canonical(string target)
    {
        if (!NeedsWork(target)) return target;
        var sb = new StringBuilder(target.Length + 16);
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < target.Length; i++)
        {
            char c = target[i];
            if (c == '%' && i + 2 < target.Length && char.IsAsciiHexDigit(target[i + 1]) && char.IsAsciiHexDigit(target[i + 2]))
            {
                sb.Append('%').Append(char.ToUpperInvariant(target[i + 1])).Append(char.ToUpperInvariant(target[i + 2]));
                i += 2;
            }
            else if (!NeverRaw(c)) sb.Append(c);
            else
            {
                int length = char.IsSurrogatePair(target, i)
                    ? Encoding.UTF8.GetBytes(target.AsSpan(i++, 2), utf8)
                    : Encoding.UTF8.GetBytes(target.AsSpan(i, 1), utf8);
                foreach (var b in utf8[..length]) sb.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }
        return sb.ToString();
    }

    private static bool NeverRaw(char c) => c == ' ' || c >= 0x80;

    private static bool NeedsWork(string target)
    {
        for (int i = 0; i < target.Length; i++)
        {
            char c = target[i];
            if (NeverRaw(c)) return true;
            if (c == '%' && i + 2 < target.Length && (IsLowerHexLetter(target[i + 1]) || IsLowerHexLetter(target[i + 2]))) return true;
        }
        return false;
    }

    private static bool IsLowerHexLetter(char c) => c is >= 'a' and <= 'f';

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
