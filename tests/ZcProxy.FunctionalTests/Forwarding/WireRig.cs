using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Tests.Balancing;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// A raw-socket origin behind the real proxy, with ZeroCopy on (ZcProxy's forwarder) or off (YARP's), for tests
/// that check bytes on the wire. Strings stand for bytes one char per byte (Latin-1) on both sides, so a byte
/// ≥ 0x80 compares exactly. Every request the origin receives is kept in <see cref="Received"/>.
/// </summary>
internal sealed class WireRig : IAsyncDisposable
{
    private readonly ConfigDirectory _dir;

    private WireRig(ConfigDirectory dir, RawSocketOrigin origin, InProcessProxy proxy, bool zeroCopy)
    {
        _dir = dir;
        Origin = origin;
        Proxy = proxy;
        ZeroCopy = zeroCopy;
    }

    public RawSocketOrigin Origin { get; }
    public InProcessProxy Proxy { get; }
    public bool ZeroCopy { get; }
    public ConcurrentQueue<RawRequest> Received { get; } = new();

    /// <param name="respond">Writes the origin's whole response and returns whether to keep the connection.</param>
    /// <param name="routeExtra">Extra JSON members of the route, e.g. "Transforms": [...] or "Metadata": { "Cache": "on" }.</param>
    /// <param name="extraSections">Extra top-level sections of the main file, e.g. "Cache": {...}.</param>
    /// <param name="destinationPath">A path after the destination's address, e.g. "base/" (YARP prefixes it to every request path).</param>
    /// <param name="destinationUrl">Another origin to route to instead of the rig's own (which then sees nothing).</param>
    public static async Task<WireRig> StartAsync(bool zeroCopy, Func<RawRequest, Socket, Task<bool>> respond,
        string routeExtra = "", string extraSections = "", string destinationPath = "", string? destinationUrl = null)
    {
        var dir = new ConfigDirectory();
        WireRig? rig = null;
        var origin = RawSocketOrigin.Start(async (request, socket) =>
        {
            rig?.Received.Enqueue(request);
            return await respond(request, socket);
        });
        try
        {
            var route = routeExtra.Length > 0 ? routeExtra + "," : "";
            dir.WriteMain($$"""
                { "Routes": { "r": { {{route}} "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
                  "Clusters": { "c": { "Destinations": { "d": { "Address": "{{(destinationUrl ?? origin.Url) + destinationPath}}" } } } } }
                """, $$"""
                "AccessLog": { "Path": "off" },
                "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }
                {{(extraSections.Length > 0 ? "," + extraSections : "")}}
                """);
            rig = new WireRig(dir, origin, await InProcessProxy.StartAsync(dir.MainFile), zeroCopy);
            return rig;
        }
        catch
        {
            await origin.DisposeAsync();
            dir.Dispose();
            throw;
        }
    }

    /// <summary>An origin that answers every request with 200 and a short body.</summary>
    public static async Task<bool> Ok(RawRequest request, Socket socket)
    {
        await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        return true;
    }

    /// <summary>A raw client connection to the proxy.</summary>
    public async Task<(Socket Socket, RawReader Reader)> ConnectAsync()
    {
        var uri = new Uri(Proxy.Url);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        return (socket, new RawReader(socket));
    }

    /// <summary>Sends <paramref name="request"/> (one char per byte) on a new connection and reads one response.</summary>
    public async Task<(int Status, Dictionary<string, string> Headers, byte[] Body)> ExchangeAsync(string request, bool noBody = false)
    {
        var (socket, reader) = await ConnectAsync();
        using (socket)
        {
            await socket.SendAsync(Encoding.Latin1.GetBytes(request).AsMemory());
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            return await reader.ReadResponseAsync(noBody, timeout.Token);
        }
    }

    /// <summary>The test's requests went through the forwarder this rig was started with (and not the other).</summary>
    public void AssertForwardingPath() => PathAssert.ForwardedOn(Proxy, ZeroCopy);

    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Origin.DisposeAsync();
        _dir.Dispose();
    }
}
