using System.Net;
using ZcProxy.Core.Forwarding;

namespace ZcProxy.Tests.Transport;

public class CleartextHttp2Tests
{
    private static HttpRequestMessage Request(HttpMethod method, string url, Version version, HttpContent? content = null)
        => new(method, url) { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact, Content = content };

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PriorKnowledgeHttp2_AndHttp11_OnOneListener(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A", BodyPattern.MapEndpoints);
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, $$"""
            { "Listen": [ { "Url": "http://127.0.0.1:0", "Protocols": "Http1AndHttp2" } ], "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} },
              "ReverseProxy": { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } },
                                "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", origin.Url))}} } } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1 });
        const long large = (1 << 20) * 3 + 5;

        // Several h2c streams at once over the one connection, then a large body and an upload.
        var small = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            using var response = await client.SendAsync(Request(HttpMethod.Get, $"{proxy.Url}/h2c/{i}", HttpVersion.Version20));
            Assert.Equal(HttpVersion.Version20, response.Version);
            return await response.Content.ReadAsStringAsync();
        }));
        Assert.Equal(Enumerable.Range(0, 8).Select(i => $"A GET /h2c/{i}"), small);
        using (var response = await client.SendAsync(Request(HttpMethod.Get, $"{proxy.Url}/bytes/{large}", HttpVersion.Version20), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpVersion.Version20, response.Version);
            Assert.Equal((BodyPattern.Sha256(large), large), await BodyPattern.HashStreamAsync(await response.Content.ReadAsStreamAsync()));
        }
        var upload = new ByteArrayContent(BodyPattern.Pieces(large).SelectMany(p => p.ToArray()).ToArray());
        using (var response = await client.SendAsync(Request(HttpMethod.Post, $"{proxy.Url}/echo", HttpVersion.Version20, upload)))
            Assert.Equal($"{large} {BodyPattern.Sha256(large)}", await response.Content.ReadAsStringAsync());
        var forwarding = proxy.Get<ForwardingMetrics>();
        Assert.Equal(10, forwarding.Yarp.Value); // HTTP/2 clients always take YARP's forwarder
        Assert.Equal(0, forwarding.ZeroCopy.Value);

        // HTTP/1.1 on the same listener keeps its path: ZcProxy's forwarder when zero copy is on.
        using var http11 = new HttpClient();
        using (var response = await http11.SendAsync(Request(HttpMethod.Get, $"{proxy.Url}/bytes/{large}", HttpVersion.Version11)))
        {
            Assert.Equal(HttpVersion.Version11, response.Version);
            Assert.Equal((BodyPattern.Sha256(large), large), await BodyPattern.HashStreamAsync(await response.Content.ReadAsStreamAsync()));
        }
        Assert.Equal("A GET /again", await http11.GetStringAsync($"{proxy.Url}/again")); // keep-alive after the body
        Assert.Equal(zeroCopy ? 2 : 0, forwarding.ZeroCopy.Value);
        Assert.Equal(zeroCopy ? 10 : 12, forwarding.Yarp.Value);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Http2OnlyListener_ServesPriorKnowledgeClients(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, $$"""
            { "Listen": [ { "Url": "http://127.0.0.1:0", "Protocols": "Http2" } ], "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} },
              "ReverseProxy": { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } },
                                "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", origin.Url))}} } } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = new HttpClient();

        using var response = await client.SendAsync(Request(HttpMethod.Get, $"{proxy.Url}/only", HttpVersion.Version20));

        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("A GET /only", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task DefaultListener_StaysHttp1_ForPriorKnowledgeClients()
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, $$"""
            { "Listen": [ { "Url": "http://127.0.0.1:0" } ],
              "ReverseProxy": { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } },
                                "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", origin.Url))}} } } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = new HttpClient();

        await Assert.ThrowsAsync<HttpRequestException>(() => client.SendAsync(Request(HttpMethod.Get, $"{proxy.Url}/x", HttpVersion.Version20)));
        Assert.Equal("A GET /x", await client.GetStringAsync($"{proxy.Url}/x"));
    }

    [Fact]
    public async Task IdleConnectionThatNeverSendsAByte_IsClosedAfterTheKeepAliveTimeout()
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, $$"""
            { "Listen": [ { "Url": "http://127.0.0.1:0", "Protocols": "Http1AndHttp2" } ], "Limits": { "KeepAliveTimeout": "1s" },
              "ReverseProxy": { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } },
                                "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", origin.Url))}} } } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(new Uri(proxy.Url).Host, new Uri(proxy.Url).Port);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int n = await socket.ReceiveAsync(new byte[16], System.Net.Sockets.SocketFlags.None, timeout.Token);

        Assert.Equal(0, n); // closed by the proxy, not by the test's timeout
    }

    [Fact]
    public async Task Check_RejectsAnUnknownProtocolSet()
    {
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, """{ "Listen": [ { "Url": "http://127.0.0.1:0", "Protocols": "h2c" } ], "ReverseProxy": { } }""");

        var (code, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);

        Assert.Equal(1, code);
        Assert.Contains($"{dir.MainFile}: $.Listen[0].Protocols: 'h2c' is not a protocol set: use \"Http1\", \"Http2\" or \"Http1AndHttp2\"", output);
    }
}
