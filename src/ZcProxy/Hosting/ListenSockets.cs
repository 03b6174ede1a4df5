using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Hosting;

/// <summary>
/// Kestrel's listen-socket factory (SocketTransportOptions.CreateBoundListenSocket) with a memory: which configuration
/// entry asked for each endpoint, and which bind failed. A start that fails on a busy or forbidden port is then
/// reported like nginx does, in one line: "FILE: $.Listen[0].Url: bind() to 127.0.0.1:80 failed (13: Permission denied)".
/// The sockets themselves are Kestrel's default ones.
/// </summary>
internal sealed class ListenSockets(string mainFile)
{
    private readonly ConcurrentDictionary<IPEndPoint, string> _jsonPaths = new();
    private readonly ConcurrentDictionary<SocketException, string> _failures = new(ReferenceEqualityComparer.Instance);

    /// <summary>Remembers that the entry at <paramref name="jsonPath"/> listens on <paramref name="url"/>'s endpoint(s).</summary>
    public void Register(string? url, string jsonPath)
    {
        if (!ListenUrl.TryParse(url, out var parsed, out _)) return;
        IPAddress[] addresses = parsed!.IsLocalhost ? [IPAddress.Loopback, IPAddress.IPv6Loopback]
            : parsed.Address is { } a && (a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any)) ? [IPAddress.Any, IPAddress.IPv6Any]
            : [parsed.Address ?? IPAddress.Loopback];
        foreach (var address in addresses) _jsonPaths.TryAdd(new IPEndPoint(address, parsed.Port), jsonPath);
    }

    /// <summary>The factory for <see cref="SocketTransportOptions.CreateBoundListenSocket"/>: Kestrel's default, failures noted.</summary>
    public Socket Bind(EndPoint endPoint)
    {
        try
        {
            return SocketTransportOptions.CreateDefaultBoundListenSocket(endPoint);
        }
        catch (SocketException e)
        {
            // Noted, not translated: Kestrel decides what a failure means (one address family of "localhost" may fail).
            var where = endPoint is IPEndPoint ip && _jsonPaths.TryGetValue(ip, out var jsonPath) ? $"{mainFile}: {jsonPath}: " : "";
            _failures[e] = $"{where}bind() to {endPoint} failed ({e.NativeErrorCode}: {e.Message})";
            throw;
        }
    }

    /// <summary>The one line for a failed bind somewhere in <paramref name="failure"/>'s exception chain, if there is one.</summary>
    public string? Describe(Exception failure) => failure switch
    {
        SocketException socket when _failures.TryGetValue(socket, out var line) => line,
        AggregateException aggregate => aggregate.InnerExceptions.Select(Describe).FirstOrDefault(line => line is not null),
        { InnerException: { } inner } => Describe(inner),
        _ => null,
    };
}
