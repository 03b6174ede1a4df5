using System.Net;
using ZcProxy.Hosting;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Hosting;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Output;

/// <summary>nginx's error_page: the errors ZcProxy answers itself carry the operator's page, the cluster's before the proxy's.</summary>
public class ErrorPagesTests
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromSeconds(1) }) { Timeout = TimeSpan.FromSeconds(30) };

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task DeadUpstream_502_ServesClusterPage_ElseProxyPage(bool zeroCopy)
    {
        using var reserved = new ReservedPort(); // refuses, and no other test's server takes the port meanwhile
        int deadPort = reserved.Port;
        using var dir = new ConfigDirectory();
        Directory.CreateDirectory(Path.Combine(dir.Root, "errors"));
        File.WriteAllText(Path.Combine(dir.Root, "errors", "50x.html"), "<h1>proxy says sorry</h1>\n");
        File.WriteAllText(Path.Combine(dir.Root, "errors", "shop.html"), "<h1>the shop is down</h1>\n");
        dir.WriteMain($$"""
            { "Routes": {
                "shop": { "ClusterId": "shop", "Match": { "Path": "/shop/{**rest}" } },
                "api": { "ClusterId": "api", "Match": { "Path": "/api/{**rest}" } } },
              "Clusters": {
                "shop": { "Metadata": { "ErrorPage502": "errors/shop.html" }, "Destinations": { "d": { "Address": "http://127.0.0.1:{{deadPort}}/" } } },
                "api": { "Destinations": { "d": { "Address": "http://127.0.0.1:{{deadPort}}/" } } } } }
            """, $$"""
            "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" },
            "ErrorPages": { "502 503 504": "errors/50x.html", "404": "text:nothing here\n" }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        using var shop = await Client.GetAsync(proxy.Url + "/shop/x");
        Assert.Equal(HttpStatusCode.BadGateway, shop.StatusCode);
        Assert.Equal("text/html; charset=utf-8", shop.Content.Headers.ContentType!.ToString());
        Assert.Equal("<h1>the shop is down</h1>\n", await shop.Content.ReadAsStringAsync());

        using var api = await Client.GetAsync(proxy.Url + "/api/x");
        Assert.Equal(HttpStatusCode.BadGateway, api.StatusCode);
        Assert.Equal("<h1>proxy says sorry</h1>\n", await api.Content.ReadAsStringAsync());

        using var none = await Client.GetAsync(proxy.Url + "/nowhere");
        Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
        Assert.Equal("text/plain; charset=utf-8", none.Content.Headers.ContentType!.ToString());
        Assert.Equal("nothing here\n", await none.Content.ReadAsStringAsync());
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task WithoutPages_TheOneLineExplanationStays(bool zeroCopy)
    {
        using var reserved = new ReservedPort(); // refuses, and no other test's server takes the port meanwhile
        int deadPort = reserved.Port;
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/r/{**rest}" } } },
              "Clusters": { {{ConfigDirectory.Cluster("c", ("dead", $"http://127.0.0.1:{deadPort}/"))}} } }
            """, $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" } """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        using var dead = await Client.GetAsync(proxy.Url + "/r/x");
        Assert.Equal(HttpStatusCode.BadGateway, dead.StatusCode);
        Assert.StartsWith($"502 Bad Gateway: upstream http://127.0.0.1:{deadPort}/: could not connect", await dead.Content.ReadAsStringAsync());
        using var none = await Client.GetAsync(proxy.Url + "/other");
        Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
        Assert.Equal("404 Not Found: no route matches this request\n", await none.Content.ReadAsStringAsync());
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Fact]
    public async Task Check_RejectsBadStatusesAndMissingFiles()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""
            { "Routes": { }, "Clusters": { "c": { "Metadata": { "ErrorPage200": "text:x", "ErrorPage503": "missing.html" }, "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """, """ "ErrorPages": { "502 abc": "text:x", "504": "nope/50x.html" } """);

        var (config, errors) = await ProxyServices.LoadAndValidateAsync(dir.MainFile);

        Assert.Null(config);
        var text = string.Join("\n", errors.Select(e => e.ToString()));
        Assert.Contains("$.ErrorPages.502 abc: 'abc' is not an error status (400-599)", text);
        Assert.Contains("$.ErrorPages.504: the file '", text);
        Assert.Contains("$.ReverseProxy.Clusters.c.Metadata.ErrorPage200: '200' is not an error status (400-599)", text);
        Assert.Contains("$.ReverseProxy.Clusters.c.Metadata.ErrorPage503: the file '", text);
        Assert.Equal(4, errors.Count);
    }
}
