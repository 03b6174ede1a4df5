using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// One proxy (a <see cref="WireRig"/> with ZcProxy's forwarder; ZCPROXY_TEST_HTTP1 picks its HTTP/1.1 layer, see
/// InProcessProxy) shared by a conformance test class, in front of an origin whose answer the request's path picks:
/// /head (Content-Length 5, no body for HEAD), /204, /304, /unframed (a body ended by the close), /chunked ("hello
/// world" in chunks), /large (<see cref="LargeBody"/> pattern bytes), and anything else an echo: Content-Length framed
/// "METHOD target\n" + the request body (its length and sha256 when over 1 KiB).
/// </summary>
public class Http1ConformanceRig : IAsyncLifetime
{
    /// <summary>Limits.MaxRequestHeadersSize: a head above it is answered 431.</summary>
    public const int MaxRequestHeadersSize = 8 * 1024;
    public const string UnframedBody = "a body that only the close ends";
    /// <summary>Above ZeroCopy.SpliceThreshold (64 KiB): such bodies are spliced, uploads and responses.</summary>
    public const int LargeBody = 300_000;

    private WireRig? _wire;

    internal WireRig Wire => _wire ?? throw new InvalidOperationException("not started");

    /// <summary>The Limits section's members besides MaxRequestHeadersSize.</summary>
    protected virtual string ExtraLimits => "";

    public async Task InitializeAsync()
    {
        var limits = $"\"MaxRequestHeadersSize\": {MaxRequestHeadersSize}" + (ExtraLimits.Length > 0 ? ", " + ExtraLimits : "");
        _wire = await WireRig.StartAsync(zeroCopy: true, RespondAsync, extraSections: $"\"Limits\": {{ {limits} }}");
    }

    public static string Echo(string method, string target, string body = "") => $"{method} {target}\n{body}";

    public static string EchoOfLargeBody(string method, string target) => Echo(method, target, $"{LargeBody} {BodyPattern.Sha256(LargeBody)}");

    private static string EchoOf(RawRequest request) => request.Body.Length > 1024
        ? Echo(request.Method, request.Target, $"{request.Body.Length} {Convert.ToHexString(SHA256.HashData(request.Body))}")
        : Echo(request.Method, request.Target, Encoding.Latin1.GetString(request.Body));

    private static async Task<bool> RespondAsync(RawRequest request, Socket socket)
    {
        switch (request.Target)
        {
            case "/head":
                await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + (request.Method == "HEAD" ? "" : "hello"));
                return true;
            case "/204":
                await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 204 No Content\r\n\r\n");
                return true;
            case "/304":
                await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
                return true;
            case "/chunked":
                await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + (request.Method == "HEAD" ? "" : "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
                return true;
            case "/large":
                await RawSocketOrigin.SendAsync(socket, $"HTTP/1.1 200 OK\r\nContent-Length: {LargeBody}\r\n\r\n");
                if (request.Method != "HEAD") foreach (var piece in BodyPattern.Pieces(LargeBody)) await socket.SendAsync(piece);
                return true;
            case "/unframed":
                await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + UnframedBody);
                return false;
            default:
                var body = EchoOf(request);
                await RawSocketOrigin.SendAsync(socket, $"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\n\r\n{body}");
                return true;
        }
    }

    /// <summary>A new client connection to the proxy.</summary>
    internal async Task<ClientConnection> ConnectAsync()
    {
        var (socket, reader) = await Wire.ConnectAsync();
        return new ClientConnection(socket, reader);
    }

    /// <summary>The origin never received a request whose line or fields contain <paramref name="marker"/>.</summary>
    internal void AssertOriginNeverSaw(string marker)
    {
        foreach (var request in Wire.Received)
        {
            var seen = request.Method + " " + request.Target + " " + string.Join(" ", request.Headers.Select(h => h.Key + ": " + h.Value));
            Assert.False(seen.Contains(marker, StringComparison.Ordinal), $"the origin received {seen}");
        }
    }

    /// <summary>The one request the origin received whose target is <paramref name="target"/>.</summary>
    internal RawRequest OriginReceived(string target) => Assert.Single(Wire.Received, r => r.Target == target);

    public async Task DisposeAsync()
    {
        if (_wire is not null) await _wire.DisposeAsync();
    }
}

/// <summary>The same proxy with short client timeouts, for the tests that wait for them (Kestrel checks them about once a second).</summary>
public sealed class Http1ShortTimeoutsRig : Http1ConformanceRig
{
    protected override string ExtraLimits => "\"KeepAliveTimeout\": \"1s\", \"RequestHeadersTimeout\": \"1s\"";
}

/// <summary>A raw client connection: strings are bytes one char per byte; every wait is bounded.</summary>
internal sealed class ClientConnection(Socket socket, RawReader reader) : IDisposable
{
    /// <summary>Long enough for a loaded machine; a proxy that never answers fails the test instead of hanging it.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    public Socket Socket => socket;

    public Task SendAsync(string text) => socket.SendAsync(Encoding.Latin1.GetBytes(text).AsMemory()).AsTask();

    public async Task<(int Status, Dictionary<string, string> Headers, string Body)> ReadAsync(bool noBody = false)
    {
        using var timeout = new CancellationTokenSource(Patience);
        var (status, headers, body) = await reader.ReadResponseAsync(noBody, timeout.Token);
        return (status, headers, Encoding.Latin1.GetString(body));
    }

    public Task<bool> ClosedByProxyAsync() => reader.PeerClosedAsync(Patience);

    /// <summary>The connection still serves a request, in step: a stray byte left from the last response would break this one's parse.</summary>
    public async Task AssertKeptAliveAsync(string http = "HTTP/1.1")
    {
        var target = "/again-" + Guid.NewGuid().ToString("N")[..8];
        await SendAsync($"GET {target} {http}\r\nHost: x\r\n{(http == "HTTP/1.0" ? "Connection: keep-alive\r\n" : "")}\r\n");
        var (status, _, body) = await ReadAsync();
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", target)), (status, body));
    }

    public async Task AssertClosedAsync() => Assert.True(await ClosedByProxyAsync(), "the proxy kept the connection open");

    public void Dispose() => socket.Dispose();
}
