using System.IO.Compression;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Compression;

/// <summary>Routes with "Compression": "on", on real listeners and both forwarding paths; bodies checked by sha256 after decoding.</summary>
public class CompressionTests
{
    private static byte[] Text(int length)
    {
        var line = Encoding.ASCII.GetBytes("ZcProxy compresses small text responses; large ones go by splice.\n");
        var body = new byte[length];
        for (int i = 0; i < length; i++) body[i] = line[i % line.Length];
        return body;
    }

    private static void MapOrigin(WebApplication app)
    {
        app.MapGet("/text/{length:int}", (HttpContext c, int length) =>
        {
            c.Response.Headers.ETag = "\"v1\"";
            c.Response.Headers.AcceptRanges = "bytes";
            c.Response.Headers.CacheControl = c.Request.Query.ContainsKey("notransform") ? "no-transform" : "max-age=60";
            return Results.Bytes(Text(length), c.Request.Query["type"].FirstOrDefault() ?? "text/html; charset=utf-8");
        });
        app.MapGet("/chunked", async (HttpContext c) =>
        {
            c.Response.ContentType = "application/json";
            for (int i = 0; i < 4; i++)
            {
                await c.Response.Body.WriteAsync(Text(1000));
                await c.Response.Body.FlushAsync();
            }
        });
        app.MapGet("/encoded", (HttpContext c) =>
        {
            c.Response.Headers.ContentEncoding = "gzip";
            return Results.Bytes(Gzip(Text(4000)), "text/html");
        });
    }

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest)) gzip.Write(data);
        return output.ToArray();
    }

    private static string WriteConfig(ConfigDirectory dir, bool zeroCopy, string originUrl, string routeMetadata = "\"Compression\": \"on\"", string sections = "")
        => dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" }, "Metadata": { {{routeMetadata}} } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "{{originUrl}}" } } } } }
            """,
            $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" }{{sections}} """);

    /// <summary>One connection for all requests of a test: every response must leave it reusable.</summary>
    private static HttpClient OneConnection() => new(new SocketsHttpHandler { MaxConnectionsPerServer = 1, AutomaticDecompression = DecompressionMethods.None })
    { Timeout = TimeSpan.FromSeconds(30) };

    private sealed record Answer(HttpStatusCode Status, string? Encoding, string Vary, long? ContentLength, string? ETag, bool AcceptRanges, byte[] Raw, byte[] Decoded, string? CacheStatus);

    private static async Task<Answer> GetAsync(HttpClient client, string url, string? acceptEncoding, HttpMethod? method = null)
    {
        using var request = new HttpRequestMessage(method ?? HttpMethod.Get, url);
        if (acceptEncoding is not null) request.Headers.TryAddWithoutValidation("Accept-Encoding", acceptEncoding);
        using var response = await client.SendAsync(request);
        var raw = await response.Content.ReadAsByteArrayAsync();
        var encoding = response.Content.Headers.ContentEncoding.SingleOrDefault();
        byte[] decoded = raw;
        if (encoding is "gzip" or "br")
        {
            using var input = new MemoryStream(raw);
            using Stream decoder = encoding == "gzip" ? new GZipStream(input, CompressionMode.Decompress) : new BrotliStream(input, CompressionMode.Decompress);
            using var output = new MemoryStream();
            await decoder.CopyToAsync(output);
            decoded = output.ToArray();
        }
        return new(response.StatusCode, encoding, string.Join(",", response.Headers.Vary), response.Content.Headers.ContentLength,
            response.Headers.ETag?.ToString(), response.Headers.AcceptRanges.Count > 0, raw, decoded,
            response.Headers.TryGetValues("X-Cache-Status", out var cache) ? cache.Single() : null);
    }

    private static string Sha(byte[] data) => Convert.ToHexString(SHA256.HashData(data));

    [Theory]
    [InlineData(false, "gzip", "gzip")]
    [InlineData(true, "gzip", "gzip")]
    [InlineData(false, "gzip, deflate, br", "br")]
    [InlineData(true, "gzip, deflate, br", "br")]
    [InlineData(false, "br;q=0, gzip", "gzip")]
    [InlineData(true, "br;q=0.5, gzip;q=0.8", "gzip")]
    [InlineData(true, "*", "br")]
    public async Task SmallText_IsCompressedWithTheCodingTheClientPrefers(bool zeroCopy, string acceptEncoding, string coding)
    {
        await using var origin = await TestOrigin.StartAsync("A", MapOrigin);
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = OneConnection();

        for (int i = 0; i < 2; i++) // twice on one connection: keep-alive survives a compressed body
        {
            var answer = await GetAsync(client, proxy.Url + "/text/20000", acceptEncoding);
            Assert.Equal(HttpStatusCode.OK, answer.Status);
            Assert.Equal(coding, answer.Encoding);
            Assert.Contains("Accept-Encoding", answer.Vary);
            Assert.Equal(Sha(Text(20000)), Sha(answer.Decoded));
            Assert.True(answer.Raw.Length < 2000, $"compressed to {answer.Raw.Length} bytes");
            Assert.Equal("W/\"v1\"", answer.ETag);   // another representation: a weak validator, as nginx's gzip makes it
            Assert.False(answer.AcceptRanges);        // ranges of the identity body would not match these bytes
        }
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClientWithoutAcceptEncoding_GetsIdentity_WithVary(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A", MapOrigin);
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = OneConnection();

        foreach (var accept in new string?[] { null, "identity", "gzip;q=0, br;q=0" })
        {
            var answer = await GetAsync(client, proxy.Url + "/text/20000", accept);
            Assert.Null(answer.Encoding);
            Assert.Contains("Accept-Encoding", answer.Vary);
            Assert.Equal(20000, answer.ContentLength);
            Assert.Equal(Sha(Text(20000)), Sha(answer.Raw));
            Assert.Equal("\"v1\"", answer.ETag);
        }
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ChunkedJson_IsCompressed(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A", MapOrigin);
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = OneConnection();

        for (int i = 0; i < 2; i++)
        {
            var answer = await GetAsync(client, proxy.Url + "/chunked", "gzip");
            Assert.Equal("gzip", answer.Encoding);
            Assert.Equal(Sha([.. Enumerable.Range(0, 4).SelectMany(_ => Text(1000))]), Sha(answer.Decoded));
        }
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false, "/text/20000?type=image/png", true)]              // not a compressible type
    [InlineData(true, "/text/20000?type=image/png", true)]
    [InlineData(false, "/text/100", true)]                               // too short to gain anything
    [InlineData(true, "/text/100", true)]
    [InlineData(false, "/text/20000?notransform=1", true)]               // Cache-Control: no-transform
    [InlineData(true, "/text/20000?notransform=1", true)]
    [InlineData(false, "/text/1048576", false)]                           // at least ZeroCopy.SpliceThreshold: it goes zero-copy
    [InlineData(true, "/text/1048576", false)]
    public async Task Response_ThatIsNotWorthCompressing_PassesAsItIs(bool zeroCopy, string path, bool lengthKnownToClient)
    {
        await using var origin = await TestOrigin.StartAsync("A", MapOrigin);
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = OneConnection();

        int length = int.Parse(path.Split('/')[2].Split('?')[0]);
        for (int i = 0; i < 2; i++)
        {
            var answer = await GetAsync(client, proxy.Url + path, "gzip, br");
            Assert.Null(answer.Encoding);
            Assert.Equal(length, answer.ContentLength);
            Assert.Equal(Sha(Text(length)), Sha(answer.Raw));
            Assert.Equal("\"v1\"", answer.ETag);
        }
        if (!lengthKnownToClient && zeroCopy) // the long body really was spliced: the compression step did not stand in the way
        {
            var metrics = proxy.Get<ProxyMetrics>();
            // All but what arrived with the response heads (read with them, so copied) went by splice.
            Assert.True(metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response) >= 2 * (1048576 - 65536),
                $"splice {metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response)}, copy {metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Response)}");
        }
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AlreadyEncodedResponse_IsNotEncodedTwice(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A", MapOrigin);
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = OneConnection();

        var answer = await GetAsync(client, proxy.Url + "/encoded", "br, gzip");
        Assert.Equal("gzip", answer.Encoding);
        Assert.Equal(Sha(Text(4000)), Sha(answer.Decoded));
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RouteWithCompressionOff_IsNotCompressed(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A", MapOrigin);
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url, routeMetadata: "\"Compression\": \"off\"");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = OneConnection();

        var answer = await GetAsync(client, proxy.Url + "/text/20000", "gzip");
        Assert.Null(answer.Encoding);
        Assert.DoesNotContain("Accept-Encoding", answer.Vary);
        Assert.Equal(Sha(Text(20000)), Sha(answer.Raw));
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task CompressionTypes_ReplaceTheDefaultList(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A", MapOrigin);
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url, routeMetadata: "\"Compression\": \"on\", \"CompressionTypes\": \"text/csv, image/x-raw\"");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = OneConnection();

        Assert.Equal("gzip", (await GetAsync(client, proxy.Url + "/text/20000?type=image/x-raw", "gzip")).Encoding);
        Assert.Null((await GetAsync(client, proxy.Url + "/text/20000", "gzip")).Encoding); // text/html is no longer in the list
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task CachedEntry_IsStoredOnce_AndEveryHitIsEncodedForItsClient(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A", MapOrigin);
        using var dir = new ConfigDirectory();
        var cachePath = Path.Combine(dir.Root, "cache");
        WriteConfig(dir, zeroCopy, origin.Url, routeMetadata: "\"Compression\": \"on\", \"Cache\": \"on\"",
            sections: $$""", "Cache": { "Path": "{{cachePath}}", "MaxSize": "64MiB" }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = OneConnection();
        var expected = Sha(Text(20000));

        async Task Expect(string? accept, string? coding, string cacheStatus)
        {
            var answer = await GetAsync(client, proxy.Url + "/text/20000", accept);
            Assert.Equal((coding, cacheStatus), (answer.Encoding, answer.CacheStatus));
            Assert.Equal(expected, Sha(answer.Decoded));
        }

        // The cache's fill sees the origin's bytes before this step encodes them: one identity entry, encoded per client.
        await Expect("gzip", "gzip", "MISS");
        await Poll.UntilAsync(async () => (await GetAsync(client, proxy.Url + "/text/20000", null)).CacheStatus == "HIT", "the entry to be stored");
        int upstream = origin.Requests;
        await Expect(null, null, "HIT");
        await Expect("gzip", "gzip", "HIT");
        await Expect("br", "br", "HIT");
        await Expect("gzip;q=0", null, "HIT");
        Assert.Equal(upstream, origin.Requests);
    }
}
