using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// One TCP stream proxy: connections accepted on <see cref="Listen"/> are relayed, both ways, to a destination of the
/// cluster <see cref="ClusterId"/> (whose destinations are <c>tcp://HOST:PORT</c>).
/// </summary>
internal sealed record StreamOptions
{
    /// <summary>"IP:PORT", "[IPv6]:PORT" or "*:PORT" (nginx <c>listen</c>, HAProxy <c>bind</c>).</summary>
    public required string Listen { get; init; }
    public required string ClusterId { get; init; }
    /// <summary>The connection is closed when no byte moved either way for this long (nginx <c>proxy_timeout</c>, default 10m).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>PROXY protocol header sent to the upstream before the client's bytes (nginx <c>proxy_protocol on</c>, HAProxy <c>send-proxy</c>/<c>send-proxy-v2</c>).</summary>
    [JsonConverter(typeof(ProxyProtocolJsonConverter))] public ProxyProtocolVersion ProxyProtocol { get; init; }
}

internal enum ProxyProtocolVersion { Off, V1, V2 }

/// <summary>"off", "v1" or "v2" (any case); anything else is reported with the accepted spellings.</summary>
internal sealed class ProxyProtocolJsonConverter : JsonConverter<ProxyProtocolVersion>
{
    public override ProxyProtocolVersion Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        return text?.ToLowerInvariant() switch
        {
            "off" => ProxyProtocolVersion.Off,
            "v1" => ProxyProtocolVersion.V1,
            "v2" => ProxyProtocolVersion.V2,
            _ => throw new JsonException("expected \"off\", \"v1\" or \"v2\""),
        };
    }

    public override void Write(Utf8JsonWriter writer, ProxyProtocolVersion value, JsonSerializerOptions options)
        => writer.WriteStringValue(value.ToString().ToLowerInvariant());
}

/// <summary>A stream's listen address: "127.0.0.1:5433", "[::1]:5433", "*:5433" or "0.0.0.0:5433" (every IPv4 address), "[::]:5433" (every address).</summary>
internal static class StreamListenAddress
{
    public static bool TryParse(string? text, out IPEndPoint? endPoint, out string error)
    {
        endPoint = null;
        error = "must be an address and port such as \"127.0.0.1:5433\", \"[::1]:5433\" or \"*:5433\"";
        if (string.IsNullOrWhiteSpace(text) || text.Contains("://", StringComparison.Ordinal)) return false;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535) return false;
        var host = text[..colon];
        IPAddress? address = host switch
        {
            "*" => IPAddress.Any, // as "*" means for HTTP listeners ("[::]" listens on IPv6 and IPv4)
            _ when host.StartsWith('[') && host.EndsWith(']') && IPAddress.TryParse(host[1..^1], out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 => v6,
            _ when !host.Contains(':') && IPAddress.TryParse(host, out var v4) => v4,
            _ => null,
        };
        if (address is null)
        {
            error = $"host '{host}' must be an IP address (IPv6 in brackets) or \"*\"";
            return false;
        }
        endPoint = new IPEndPoint(address, port);
        return true;
    }
}
