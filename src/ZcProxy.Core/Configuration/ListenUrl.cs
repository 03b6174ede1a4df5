using System.Net;

namespace ZcProxy.Core.Configuration;

/// <summary>A parsed listener URL: http(s)://address:port, where address is an IP, "localhost" or "*".</summary>
internal sealed record ListenUrl(string Scheme, IPAddress? Address, bool IsLocalhost, int Port)
{
    public bool IsHttps => Scheme == "https";

    public static bool TryParse(string? url, out ListenUrl? result, out string error)
    {
        result = null;
        error = "";
        if (string.IsNullOrWhiteSpace(url) || !url.Contains("://"))
        {
            error = "must be a URL such as \"http://127.0.0.1:8080\"";
            return false;
        }
        var schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        var scheme = url[..schemeEnd].ToLowerInvariant();
        if (scheme is not ("http" or "https"))
        {
            error = $"scheme '{scheme}' is not supported (use http or https)";
            return false;
        }
        var hostPort = url[(schemeEnd + 3)..].TrimEnd('/');
        var colon = hostPort.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(hostPort[(colon + 1)..], out var port) || port is < 0 or > 65535)
        {
            error = "must name a port between 0 and 65535, e.g. \"http://127.0.0.1:8080\"";
            return false;
        }
        var host = hostPort[..colon].Trim('[', ']');
        if (host is "*" or "+" or "0.0.0.0") { result = new(scheme, IPAddress.Any, false, port); return true; }
        if (host == "::") { result = new(scheme, IPAddress.IPv6Any, false, port); return true; }
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) { result = new(scheme, null, true, port); return true; }
        if (IPAddress.TryParse(host, out var address)) { result = new(scheme, address, false, port); return true; }
        error = $"host '{host}' must be an IP address, \"localhost\" or \"*\"";
        return false;
    }
}
