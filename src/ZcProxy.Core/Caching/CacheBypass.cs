using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Caching;

/// <summary>
/// A route's <c>"CacheBypass"</c> Metadata (nginx's <c>proxy_cache_bypass</c>), in nginx's own spelling:
/// <c>"$http_pragma $cookie_nocache $arg_nocache"</c>. A request for which any of them is present with a value other than
/// empty or <c>0</c> is not answered from the cache: it goes to the origin (<c>X-Cache-Status: BYPASS</c>) and, as in
/// nginx, the response is stored as usual, replacing the entry.
/// </summary>
internal sealed class CacheBypass
{
    public const string MetadataKey = "CacheBypass";
    private static readonly ConditionalWeakTable<RouteConfig, CacheBypass> ByRoute = [];
    private static readonly CacheBypass None = new([]);

    private readonly (Source Source, string Name)[] _conditions;

    private CacheBypass((Source, string)[] conditions) => _conditions = conditions;

    private enum Source { Header, Cookie, Query }

    /// <summary>True when the request's route bypasses the cache for this request.</summary>
    public static bool Applies(HttpContext context)
    {
        if (context.Features.Get<IReverseProxyFeature>()?.Route.Config is not { } route) return false;
        var rules = ByRoute.GetValue(route, static r => r.Metadata?.TryGetValue(MetadataKey, out var text) == true && TryParse(text, out var parsed, out _) ? parsed! : None);
        foreach (var (source, name) in rules._conditions)
        {
            string? value = source switch
            {
                Source.Header => context.Request.Headers[name].ToString(),
                Source.Cookie => context.Request.Cookies[name],
                _ => context.Request.Query[name].ToString(),
            };
            if (!string.IsNullOrEmpty(value) && value != "0") return true;
        }
        return false;
    }

    /// <summary>Parses the Metadata value: <c>$http_NAME</c> (a request header, '_' for '-'), <c>$cookie_NAME</c>, <c>$arg_NAME</c>.</summary>
    public static bool TryParse(string? text, out CacheBypass? rules, out string error)
    {
        rules = null;
        error = "";
        var conditions = new List<(Source, string)>();
        foreach (var word in CacheIgnoreHeaders.Names(text))
        {
            (Source, string)? condition =
                word.StartsWith("$http_", StringComparison.OrdinalIgnoreCase) && word.Length > 6 ? (Source.Header, word[6..].Replace('_', '-'))
                : word.StartsWith("$cookie_", StringComparison.OrdinalIgnoreCase) && word.Length > 8 ? (Source.Cookie, word[8..])
                : word.StartsWith("$arg_", StringComparison.OrdinalIgnoreCase) && word.Length > 5 ? (Source.Query, word[5..])
                : null;
            if (condition is null)
            {
                error = $"'{word}' is not $http_NAME, $cookie_NAME or $arg_NAME";
                return false;
            }
            conditions.Add(condition.Value);
        }
        if (conditions.Count == 0)
        {
            error = "must name at least one condition, e.g. \"$http_pragma $cookie_nocache\"";
            return false;
        }
        rules = new CacheBypass([.. conditions]);
        return true;
    }
}
