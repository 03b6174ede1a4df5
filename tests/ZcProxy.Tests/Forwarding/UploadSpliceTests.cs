using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Upstream;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// Uploads (client → upstream bodies) through both forwarders: on the zero-copy path a Content-Length body of at least
/// SpliceThreshold is spliced client socket → pipe → upstream socket (the bytes read with the request head go first,
/// copied); smaller ones, and everything on YARP's path, are copied. The origin checks length and sha256; the next
/// request on the same client connection proves keep-alive.
/// </summary>
public sealed class UploadSpliceTests
{
    private const int Threshold = 64 * 1024;

    /// <summary>An origin whose /upload answers "length sha256" of the body it read (no body size limit of its own).</summary>
    internal static Task<TestOrigin> StartOriginAsync() => TestOrigin.StartAsync("o", app =>
        app.MapPost("/upload", async (HttpContext context) =>
        {
            context.Features.Get<IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = null;
            var (sha, length) = await BodyPattern.HashStreamAsync(context.Request.Body);
            return Results.Text($"{length} {sha}");
        }));

    private static async Task<(ConfigDirectory Dir, InProcessProxy Proxy)> StartProxyAsync(string originUrl, bool zeroCopy, string zeroCopyExtra = "", string options = "")
    {
        var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "{{originUrl}}" } } } } }
            """, $$"""
            "AccessLog": { "Path": "off" }, {{(options.Length > 0 ? options + "," : "")}}
            "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}}, "SpliceThreshold": {{Threshold}} {{zeroCopyExtra}} }
            """);
        try { return (dir, await InProcessProxy.StartAsync(dir.MainFile)); }
        catch { dir.Dispose(); throw; }
    }

    /// <summary>Sends a POST of <paramref name="length"/> pattern bytes on <paramref name="socket"/> (head and body, as a client would).</summary>
    internal static async Task SendUploadAsync(Socket socket, long length, string path = "/upload")
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes($"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n").AsMemory());
        foreach (var piece in BodyPattern.Pieces(length)) await socket.SendAsync(piece);
    }

    private static long Body(InProcessProxy proxy, BodyMechanism mechanism) => proxy.Get<ProxyMetrics>().GetBodyBytes(mechanism, BodyDirection.Request);

    [Theory]
    [InlineData(true, 0)]
    [InlineData(true, 1)]
    [InlineData(true, Threshold - 1)]
    [InlineData(true, Threshold)]
    [InlineData(true, 1 << 20)]
    [InlineData(true, 64 << 20)]
    [InlineData(false, 1)]
    [InlineData(false, Threshold)]
    [InlineData(false, 64 << 20)]
    public async Task Upload_ArrivesShaExact_SplicedFromTheThreshold_AndTheConnectionIsKeptAlive(bool zeroCopy, long length)
    {
        await using var origin = await StartOriginAsync();
        var (dir, proxy) = await StartProxyAsync(origin.Url, zeroCopy);
        using var _ = dir;
        await using var __ = proxy;
        var uri = new Uri(proxy.Url);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        var reader = new RawReader(socket);

        var sending = SendUploadAsync(socket, length);
        var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await sending;
        Assert.Equal(200, response.Status);
        Assert.Equal($"{length} {BodyPattern.Sha256(length)}", Encoding.ASCII.GetString(response.Body));
        Assert.False(response.Headers.ContainsKey("Connection"), "the connection must stay open after the upload");

        // Keep-alive: the next request on the same connection is served (another upload, then a GET).
        await SendUploadAsync(socket, 3);
        var second = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal($"3 {BodyPattern.Sha256(3)}", Encoding.ASCII.GetString(second.Body));
        await socket.SendAsync("GET /after HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray().AsMemory());
        var third = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("o GET /after", Encoding.ASCII.GetString(third.Body));

        PathAssert.ForwardedOn(proxy, zeroCopy);
        long spliced = Body(proxy, BodyMechanism.Splice), copied = Body(proxy, BodyMechanism.Copy);
        Assert.Equal(length + 3, spliced + copied); // every body byte counted once
        if (zeroCopy && length >= Threshold)
            // Only what came with the request head (one input block at most) was in user space.
            Assert.InRange(spliced, length - ZeroCopyTransport.BlockSize, length);
        else Assert.Equal(0, spliced);
    }
}
