using Microsoft.AspNetCore.Http;

namespace ZcProxy.Core.Balancing;

internal enum HashKeySource { ClientIp, Header, Cookie, Path, PathAndQuery }

/// <summary>
/// What the ConsistentHash policy hashes: "ClientIp" (nginx ip_hash), "Header:X-User", "Cookie:sid", "Path",
/// "PathAndQuery". A request without the header or cookie is hashed by its client IP instead, so that it still
/// sticks somewhere rather than all such requests landing on one destination.
/// </summary>
internal sealed record HashKeySpec(HashKeySource Source, string? Name)
{
    public static readonly HashKeySpec Default = new(HashKeySource.ClientIp, null);
    public const string Syntax = "ClientIp, Header:NAME, Cookie:NAME, Path or PathAndQuery";

    public static bool TryParse(string? text, out HashKeySpec spec)
    {
        spec = Default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var t = text.Trim();
        int colon = t.IndexOf(':');
        var kind = colon < 0 ? t : t[..colon].Trim();
        var name = colon < 0 ? null : t[(colon + 1)..].Trim();
        HashKeySpec? parsed = kind.ToLowerInvariant() switch
        {
            "clientip" when name is null => new(HashKeySource.ClientIp, null),
            "path" when name is null => new(HashKeySource.Path, null),
            "pathandquery" when name is null => new(HashKeySource.PathAndQuery, null),
            "header" when !string.IsNullOrEmpty(name) => new(HashKeySource.Header, name),
            "cookie" when !string.IsNullOrEmpty(name) => new(HashKeySource.Cookie, name),
            _ => null,
        };
        if (parsed is null) return false;
        spec = parsed;
        return true;
    }

    public string Extract(HttpContext context)
    {
        string? key = Source switch
        {
            HashKeySource.Header => context.Request.Headers[Name!].ToString(),
            HashKeySource.Cookie => context.Request.Cookies[Name!],
            HashKeySource.Path => context.Request.Path.Value,
            HashKeySource.PathAndQuery => context.Request.Path.Value + context.Request.QueryString.Value,
            _ => null,
        };
        return string.IsNullOrEmpty(key) ? context.Connection.RemoteIpAddress?.ToString() ?? "" : key;
    }

    public override string ToString() => Name is null ? Source.ToString() : $"{Source}:{Name}";
}
