using System.Net;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Local;

/// <summary>Routes without a cluster that answer by themselves (nginx <c>return</c>), on both transports.</summary>
public class DirectAnswerTests
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { Timeout = TimeSpan.FromSeconds(30) };

    private static string WriteConfig(ConfigDirectory dir, bool zeroCopy, string routes) => dir.WriteMain($$"""
        { "Routes": { {{routes}} }, "Clusters": { } }
        """, $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" } """);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Redirect_BuildsLocationFromHostAndRawTarget(bool zeroCopy)
    {
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, """
            "https": { "Match": { "Path": "/{**rest}" }, "Metadata": { "Return": "301 https://{host}{uri}", "ReturnHeader.Cache-Control": "no-store" } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url + "/a%2Fb/c?x=1&y=%20");
        request.Headers.Host = "WWW.Example.com:8080";
        using var response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.MovedPermanently, response.StatusCode);
        Assert.Equal("https://www.example.com/a%2Fb/c?x=1&y=%20", response.Headers.Location!.OriginalString);
        Assert.Equal("no-store", response.Headers.CacheControl!.ToString());
        Assert.Equal(0, response.Content.Headers.ContentLength);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Text_AnswersWithTemplateBody_AndKeepsTheConnection(bool zeroCopy)
    {
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, """
            "ok": { "Match": { "Path": "/health" }, "Metadata": { "Return": "200 ok {path} q={query} {\"json\": true}", "ReturnHeader.Content-Type": "application/json" } },
            "gone": { "Match": { "Path": "/old/{**rest}" }, "Metadata": { "Return": "410" } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        // Raw HTTP/1.1 on one connection: two answers and a HEAD, keep-alive throughout.
        using var socket = new TcpClient();
        await socket.ConnectAsync(new Uri(proxy.Url).Host, new Uri(proxy.Url).Port);
        var stream = socket.GetStream();
        async Task<string> Exchange(string head)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
            return await ReadResponseAsync(stream, head.StartsWith("HEAD ", StringComparison.Ordinal));
        }
        var first = await Exchange("GET /health?a=b HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 ", first);
        Assert.Contains("Content-Type: application/json", first);
        Assert.EndsWith("\r\n\r\nok /health q=a=b {\"json\": true}", first);
        var head = await Exchange("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 ", head);
        Assert.EndsWith("\r\n\r\n", head);
        var gone = await Exchange("GET /old/page HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 410 ", gone);
        Assert.Contains("Content-Length: 0", gone);
    }

    [Fact]
    public async Task Check_RejectsBadReturnSpellings()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""
            { "Routes": {
                "a": { "Match": { "Path": "/a" }, "Metadata": { "Return": "301" } },
                "b": { "Match": { "Path": "/b" }, "Metadata": { "Return": "200 {hots}" } },
                "c": { "Match": { "Path": "/c" }, "Metadata": { "Return": "abc" } },
                "d": { "Match": { "Path": "/d" }, "ClusterId": "x", "Metadata": { "Return": "200 ok" } },
                "e": { "Match": { "Path": "/e" }, "Metadata": { "Return": "200", "ReturnHeader.Bad Name": "v" } },
                "f": { "Match": { "Path": "/f" } }
              },
              "Clusters": { "x": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } }
            """);

        var (config, errors) = await ProxyServices.LoadAndValidateAsync(dir.MainFile);

        Assert.Null(config);
        var text = string.Join("\n", errors.Select(e => e.ToString()));
        Assert.Contains("$.ReverseProxy.Routes.a.Metadata.Return: a 301 redirect needs its URL", text);
        Assert.Contains("$.ReverseProxy.Routes.b.Metadata.Return: unknown placeholder '{hots}'", text);
        Assert.Contains("$.ReverseProxy.Routes.c.Metadata.Return: 'abc' is not \"STATUS [TEXT]\"", text);
        Assert.Contains("$.ReverseProxy.Routes.d.ClusterId: a route with Metadata 'Return", text);
        Assert.Contains("$.ReverseProxy.Routes.e.Metadata.ReturnHeader.Bad Name: 'Bad Name' is not a header field name", text);
        Assert.Contains("$.ReverseProxy.Routes.f.ClusterId: is required", text);
        Assert.Equal(6, errors.Count);
    }

    /// <summary>One response: head, then Content-Length bytes of body (none for HEAD: the caller's head has no body).</summary>
    internal static async Task<string> ReadResponseAsync(NetworkStream stream, bool head = false)
    {
        var buffer = new List<byte>();
        var one = new byte[1];
        while (!(buffer.Count >= 4 && buffer[^4] == '\r' && buffer[^3] == '\n' && buffer[^2] == '\r' && buffer[^1] == '\n'))
        {
            if (await stream.ReadAsync(one) == 0) throw new IOException("connection closed inside a response head");
            buffer.Add(one[0]);
        }
        var text = Encoding.Latin1.GetString([.. buffer]);
        var lengthLine = text.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
        if (lengthLine is null || head) return text;
        int length = int.Parse(lengthLine["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var body = new byte[length];
        await stream.ReadExactlyAsync(body);
        return text + Encoding.UTF8.GetString(body);
    }
}
