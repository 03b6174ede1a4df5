using System.Globalization;
using Microsoft.Extensions.Primitives;

namespace ZcProxy.Core.Caching;

/// <summary>
/// Cache-Control directives (RFC 9111 §5.2) of a request or response: names lower-cased, values unquoted.
/// A directive given twice keeps its first value; an invalid delta-seconds value reads as "present but unusable".
/// </summary>
internal sealed class CacheControl
{
    private readonly Dictionary<string, string?> _directives = new(StringComparer.OrdinalIgnoreCase);

    public static readonly CacheControl Empty = new();

    /// <summary>The targeted field this cache obeys before Cache-Control (RFC 9213: a CDN-like shared cache).</summary>
    public const string TargetedField = "CDN-Cache-Control";

    /// <summary>True when the directives came from <see cref="TargetedField"/>: then Cache-Control and Expires are ignored.</summary>
    public bool Targeted { get; private init; }

    /// <summary>
    /// A response's directives for this cache (RFC 9213 §2.1): a valid, non-empty CDN-Cache-Control wins and
    /// Cache-Control and Expires are ignored; otherwise Cache-Control.
    /// </summary>
    public static CacheControl ForResponse(string? targeted, StringValues cacheControl)
    {
        if (!string.IsNullOrWhiteSpace(targeted))
        {
            var cc = Parse(targeted);
            if (cc._directives.Count > 0)
            {
                var result = new CacheControl { Targeted = true };
                foreach (var (k, v) in cc._directives) result._directives[k] = v;
                return result;
            }
        }
        return Parse(cacheControl);
    }

    /// <summary>The response's directives for this cache; none when the route ignores Cache-Control (nginx proxy_ignore_headers).</summary>
    public static CacheControl ForResponse(Microsoft.AspNetCore.Http.IHeaderDictionary headers, IgnoredHeaders ignored = IgnoredHeaders.None)
        => ignored.HasFlag(IgnoredHeaders.CacheControl) ? new CacheControl() : ForResponse(headers[TargetedField].ToString(), headers.CacheControl);

    /// <inheritdoc cref="ForResponse(Microsoft.AspNetCore.Http.IHeaderDictionary, IgnoredHeaders)"/>
    public static CacheControl ForResponse(StoredResponse stored, IgnoredHeaders ignored = IgnoredHeaders.None)
        => ignored.HasFlag(IgnoredHeaders.CacheControl) ? new CacheControl() : ForResponse(stored.Header(TargetedField), stored.Header("Cache-Control"));

    public static CacheControl Parse(StringValues headerValues)
    {
        var cc = new CacheControl();
        foreach (var value in headerValues)
        {
            if (string.IsNullOrEmpty(value)) continue;
            foreach (var part in SplitOutsideQuotes(value))
            {
                var item = part.Trim();
                if (item.Length == 0) continue;
                int eq = item.IndexOf('=');
                string name = (eq < 0 ? item : item[..eq]).Trim().ToLowerInvariant();
                string? arg = eq < 0 ? null : Unquote(item[(eq + 1)..].Trim());
                cc._directives.TryAdd(name, arg);
            }
        }
        return cc;
    }

    public bool Has(string directive) => _directives.ContainsKey(directive);

    public string? Argument(string directive) => _directives.TryGetValue(directive, out var v) ? v : null;

    /// <summary>delta-seconds of a directive (RFC 9111 §1.2.2); null when absent or not a valid number (huge values saturate).</summary>
    public TimeSpan? Seconds(string directive)
    {
        if (!_directives.TryGetValue(directive, out var v) || string.IsNullOrEmpty(v)) return null;
        foreach (var ch in v) if (ch is < '0' or > '9') return null;
        return long.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n < int.MaxValue
            ? TimeSpan.FromSeconds(n) : TimeSpan.FromSeconds(int.MaxValue);
    }

    public bool NoStore => Has("no-store");
    /// <summary>Unqualified no-cache: nothing may be reused without validation. (Qualified no-cache="field" only withholds fields.)</summary>
    public bool NoCache => Has("no-cache") && string.IsNullOrEmpty(Argument("no-cache"));
    /// <summary>Unqualified private: a shared cache stores nothing. (Qualified private="field" only withholds fields.)</summary>
    public bool Private => Has("private") && string.IsNullOrEmpty(Argument("private"));

    /// <summary>Field names listed by qualified private="..." and no-cache="...": never stored by a shared cache (§5.2.2.4, §5.2.2.7).</summary>
    public IEnumerable<string> WithheldFields()
    {
        foreach (var directive in new[] { "private", "no-cache" })
            if (Argument(directive) is { Length: > 0 } list)
                foreach (var name in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    yield return name;
    }
    public bool Public => Has("public");
    public bool MustRevalidate => Has("must-revalidate");
    public bool ProxyRevalidate => Has("proxy-revalidate");
    public bool OnlyIfCached => Has("only-if-cached");
    public TimeSpan? MaxAge => Seconds("max-age");
    public TimeSpan? SMaxAge => Seconds("s-maxage");
    public TimeSpan? MinFresh => Seconds("min-fresh");
    public TimeSpan? StaleWhileRevalidate => Seconds("stale-while-revalidate");
    public TimeSpan? StaleIfError => Seconds("stale-if-error");

    private static IEnumerable<string> SplitOutsideQuotes(string value)
    {
        int start = 0;
        bool quoted = false;
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            if (c == '"') quoted = !quoted;
            else if (c == '\\' && quoted) i++;
            else if (c == ',' && !quoted)
            {
                yield return value[start..i];
                start = i + 1;
            }
        }
        yield return value[start..];
    }

    private static string Unquote(string v) => v.Length >= 2 && v[0] == '"' && v[^1] == '"' ? v[1..^1].Replace("\\", "") : v;
}
