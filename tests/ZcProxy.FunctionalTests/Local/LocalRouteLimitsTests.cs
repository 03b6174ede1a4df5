using System.IO.Compression;
using System.Net;
using System.Text;
using ZcProxy.Core.RateLimiting;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Local;

/// <summary>
/// Routes without a cluster (Static, Return) take their route's rate limit and compression like proxied routes do:
/// nginx applies limit_req and gzip to what it serves itself. On both transports (ZeroCopy.Enabled true and false).
/// </summary>
public sealed class LocalRouteLimitsTests : IDisposable
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false, AutomaticDecompression = DecompressionMethods.None })
    {
        Timeout = TimeSpan.FromSeconds(30),
    };

    /// <summary>Long enough to be compressed (at least 256 bytes), far below the splice threshold.</summary>
    private static readonly string Text = string.Concat(Enumerable.Range(0, 100).Select(i => $"line {i} of a compressible page; "));

    private readonly ConfigDirectory _dir = new();

    private string Www => Path.Combine(_dir.Root, "www");

    public LocalRouteLimitsTests()
    {
        Directory.CreateDirectory(Path.Combine(Www, "files")); // a Static route maps the whole request path under its root
        File.WriteAllText(Path.Combine(Www, "files", "page.txt"), Text);
    }

    public void Dispose() => _dir.Dispose();

    private Task<InProcessProxy> StartAsync(bool zeroCopy, string routeExtra, string metadataExtra = "") => WriteAndStartAsync($$"""
        { "Routes": {
            "files": { "Match": { "Path": "/files/{**rest}" }, {{routeExtra}}
                       "Metadata": { "Static": "{{Www}}" {{metadataExtra}} } },
            "answer": { "Match": { "Path": "/answer" }, {{routeExtra}}
                        "Metadata": { "Return": "200 {{Text}}", "ReturnHeader.Content-Type": "text/plain" {{metadataExtra}} } } },
          "Clusters": { } }
        """, zeroCopy);

    private async Task<InProcessProxy> WriteAndStartAsync(string reverseProxy, bool zeroCopy)
    {
        _dir.WriteMain(reverseProxy, $$"""
            "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" },
            "RateLimits": { "p": { "Kind": "FixedWindow", "Limit": 2, "Per": "1h" } }
            """);
        return await InProcessProxy.StartAsync(_dir.MainFile);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task StaticAndReturnRoutes_AreRateLimited_WithTheirPolicysCount(bool zeroCopy)
    {
        await using var proxy = await StartAsync(zeroCopy, """ "RateLimiterPolicy": "p", """);

        using (var file = await Client.GetAsync(proxy.Url + "/files/page.txt"))
        {
            Assert.Equal(HttpStatusCode.OK, file.StatusCode);
            Assert.Equal(Text, await file.Content.ReadAsStringAsync());
        }
        using (var answer = await Client.GetAsync(proxy.Url + "/answer"))
        {
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            Assert.Equal(Text, await answer.Content.ReadAsStringAsync());
        }
        // The policy's two requests are used (one count across its routes, as one nginx zone): both routes refuse now.
        foreach (var path in new[] { "/answer", "/files/page.txt" })
        {
            using var refused = await Client.GetAsync(proxy.Url + path);
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Equal("3600", refused.Headers.GetValues("Retry-After").Single());
            Assert.Contains("rate limit 'p'", await refused.Content.ReadAsStringAsync());
        }
        Assert.Equal(2, proxy.Get<RateLimitMetrics>().Rejections("p").Value);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task StaticAndReturnRoutes_AreCompressed_ForClientsThatAcceptIt(bool zeroCopy)
    {
        await using var proxy = await StartAsync(zeroCopy, "", """, "Compression": "on" """);

        foreach (var path in new[] { "/files/page.txt", "/answer" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url + path);
            request.Headers.Add("Accept-Encoding", "gzip");
            using var response = await Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("gzip", Assert.Single(response.Content.Headers.ContentEncoding));
            Assert.Contains("Accept-Encoding", response.Headers.Vary);
            var encoded = await response.Content.ReadAsByteArrayAsync();
            Assert.True(encoded.Length < Text.Length / 2, $"{path}: {encoded.Length} bytes for {Text.Length}");
            using var gzip = new GZipStream(new MemoryStream(encoded), CompressionMode.Decompress);
            using var decoded = new MemoryStream();
            await gzip.CopyToAsync(decoded);
            Assert.Equal(Text, Encoding.UTF8.GetString(decoded.ToArray()));

            // A client that accepts no coding gets the identity body.
            using var plain = await Client.GetAsync(proxy.Url + path);
            Assert.Empty(plain.Content.Headers.ContentEncoding);
            Assert.Equal(Text, await plain.Content.ReadAsStringAsync());
        }
    }
}
