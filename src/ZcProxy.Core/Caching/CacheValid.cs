using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Caching;

/// <summary>
/// A route's <c>"CacheValid"</c> Metadata (nginx's <c>proxy_cache_valid</c>): how long a response stays fresh, by status,
/// when the origin says nothing (no <c>s-maxage</c>, <c>max-age</c> or <c>Expires</c>): <c>"200 302 10m; 404 1m; any 30s"</c>.
/// Rules are separated by <c>;</c>; each is status codes (or <c>any</c>) then a duration; a duration alone means
/// 200 301 302, as in nginx. The first rule naming the status wins, <c>any</c> wherever it stands comes last.
/// A status with a time is also storable without explicit freshness (a 500, say), like nginx.
/// </summary>
internal sealed class CacheValid
{
    public const string MetadataKey = "CacheValid";
    private static readonly int[] DefaultStatuses = [200, 301, 302];
    private static readonly ConditionalWeakTable<RouteConfig, CacheValid> ByRoute = [];
    private static readonly CacheValid None = new([], null);

    private readonly Dictionary<int, TimeSpan> _byStatus;
    private readonly TimeSpan? _any;

    private CacheValid(Dictionary<int, TimeSpan> byStatus, TimeSpan? any)
    {
        _byStatus = byStatus;
        _any = any;
    }

    /// <summary>The freshness lifetime for <paramref name="status"/> when the origin gives none; null when no rule names it.</summary>
    public TimeSpan? For(int status) => _byStatus.TryGetValue(status, out var time) ? time : _any;

    /// <summary>The request's route's rules (parsed once per route config); an empty set when it has none or they are invalid (check rejects those).</summary>
    public static CacheValid ForRoute(HttpContext context)
    {
        if (context.Features.Get<IReverseProxyFeature>()?.Route.Config is not { } route) return None;
        return ByRoute.GetValue(route, static r => r.Metadata?.TryGetValue(MetadataKey, out var text) == true && TryParse(text, out var rules, out _) ? rules! : None);
    }

    /// <summary>Parses the Metadata value; false with a message naming the bad part.</summary>
    public static bool TryParse(string? text, out CacheValid? rules, out string error)
    {
        rules = null;
        error = "";
        var byStatus = new Dictionary<int, TimeSpan>();
        TimeSpan? any = null;
        var parts = (text ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0)
        {
            error = "must hold at least one rule, e.g. \"200 302 10m; 404 1m\"";
            return false;
        }
        foreach (var part in parts)
        {
            var words = part.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            // A unit is required: "200 302" would otherwise read as 200 for 302 seconds.
            if (words[^1].All(char.IsAsciiDigit) || !Duration.TryParse(words[^1], out var time))
            {
                error = $"'{part}': must end with a duration with its unit (e.g. 10m, 30s)";
                return false;
            }
            var codes = words.Length == 1 ? DefaultStatuses.Select(c => c.ToString(CultureInfo.InvariantCulture)) : words[..^1];
            foreach (var code in codes)
            {
                if (code.Equals("any", StringComparison.OrdinalIgnoreCase))
                    any ??= time;
                else if (int.TryParse(code, NumberStyles.None, CultureInfo.InvariantCulture, out int status) && status is >= 200 and <= 599 and not 206 and not 304)
                    byStatus.TryAdd(status, time);
                else
                {
                    error = $"'{code}' is not a status code that can be stored (200-599 except 206 and 304) or 'any'";
                    return false;
                }
            }
        }
        rules = new CacheValid(byStatus, any);
        return true;
    }
}
