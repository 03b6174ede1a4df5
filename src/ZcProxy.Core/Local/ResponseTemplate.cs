using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Caching;

namespace ZcProxy.Core.Local;

/// <summary>
/// A text with request placeholders, as nginx's variables in <c>return</c>: <c>{scheme}</c>, <c>{host}</c> (the Host
/// header without its port, nginx <c>$host</c>), <c>{uri}</c> (the target as the client sent it, <c>$request_uri</c>),
/// <c>{path}</c> (its path) and <c>{query}</c> (what follows the <c>?</c>, <c>$args</c>). Parsed once per route; a
/// <c>{word}</c> that names none of them is a configuration error, any other brace (JSON) is text.
/// </summary>
internal sealed partial class ResponseTemplate
{
    public static readonly string[] Placeholders = ["scheme", "host", "uri", "path", "query"];

    private readonly (string Text, string? Placeholder)[] _parts;

    private ResponseTemplate((string, string?)[] parts) => _parts = parts;

    /// <summary>The template, or null with <paramref name="error"/> saying which placeholder is unknown.</summary>
    public static ResponseTemplate? Parse(string text, out string? error)
    {
        error = null;
        var parts = new List<(string, string?)>();
        int at = 0;
        foreach (Match m in Word().Matches(text))
        {
            var name = m.Groups[1].Value;
            if (!Placeholders.Contains(name))
            {
                error = $"unknown placeholder '{{{name}}}' (known: {string.Join(", ", Placeholders.Select(p => "{" + p + "}"))})";
                return null;
            }
            if (m.Index > at) parts.Add((text[at..m.Index], null));
            parts.Add(("", name));
            at = m.Index + m.Length;
        }
        if (at < text.Length) parts.Add((text[at..], null));
        return new ResponseTemplate([.. parts]);
    }

    public string Render(HttpContext context)
    {
        if (_parts.Length == 1 && _parts[0].Placeholder is null) return _parts[0].Text;
        var request = context.Request;
        string? target = null;
        var sb = new StringBuilder();
        foreach (var (text, placeholder) in _parts)
        {
            switch (placeholder)
            {
                case null: sb.Append(text); break;
                case "scheme": sb.Append(request.Scheme); break;
                case "host": sb.Append(HostOf(context)); break;
                default:
                    target ??= CacheKey.TargetOf(request);
                    int q = target.IndexOf('?');
                    sb.Append(placeholder switch
                    {
                        "uri" => target,
                        "path" => q < 0 ? target : target[..q],
                        _ => q < 0 ? "" : target[(q + 1)..],
                    });
                    break;
            }
        }
        return sb.ToString();
    }

    /// <summary>nginx's $host: the Host header's name, lower-cased, without its port; the address the request came to when there is none.</summary>
    private static string HostOf(HttpContext context)
    {
        var host = context.Request.Host;
        if (host.HasValue && host.Host.Length > 0) return host.Host.ToLowerInvariant();
        var local = context.Connection.LocalIpAddress;
        return local is null ? "localhost" : local.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{local}]" : local.ToString();
    }

    [GeneratedRegex(@"\{([A-Za-z_]+)\}")]
    private static partial Regex Word();
}
