using System.Net;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.RateLimiting;

/// <summary>
/// What a policy counts by (nginx's limit_req_zone key): the client's address (<c>$binary_remote_addr</c>: the
/// connection's peer, not a forwarded header), a request header's value (<c>$http_x_api_key</c>), or the route (one
/// limiter for all of a route's clients). A request without the key (no such header) is not limited, as nginx does not
/// count requests whose key is empty.
/// </summary>
internal sealed class RateLimitKey
{
    private readonly Kind _kind;
    private readonly string _header = "";

    private RateLimitKey(Kind kind, string header = "")
    {
        _kind = kind;
        _header = header;
    }

    private enum Kind { ClientIp, Header, Route }

    public static RateLimitKey? Parse(string? text, out string error)
    {
        error = "";
        if (string.Equals(text, "ClientIp", StringComparison.OrdinalIgnoreCase)) return new(Kind.ClientIp);
        if (string.Equals(text, "Route", StringComparison.OrdinalIgnoreCase)) return new(Kind.Route);
        const string prefix = "Header:";
        if (text is not null && text.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            var name = text[prefix.Length..].Trim();
            if (name.Length > 0 && name.All(IsTokenChar)) return new(Kind.Header, name);
            error = $"'{text}' does not name a header: use \"Header:X-Api-Key\"";
            return null;
        }
        error = $"'{text}' is not a key: use \"ClientIp\", \"Header:NAME\" or \"Route\"";
        return null;
    }

    /// <summary>The partition key of this request; null: not limited.</summary>
    public object? Of(HttpContext context) => _kind switch
    {
        Kind.ClientIp => Normalize(context.Connection.RemoteIpAddress),
        Kind.Header => context.Request.Headers.TryGetValue(_header, out var value) && value.Count > 0 && value.ToString() is { Length: > 0 } v ? v : null,
        _ => context.Features.Get<IReverseProxyFeature>()?.Route.Config.RouteId,
    };

    /// <summary>One key per client whether it came over IPv4 or as an IPv4-mapped IPv6 address.</summary>
    public static IPAddress? Normalize(IPAddress? address) => address is { IsIPv4MappedToIPv6: true } ? address.MapToIPv4() : address;

    private static bool IsTokenChar(char c) => c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9')
        or '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~';
}
