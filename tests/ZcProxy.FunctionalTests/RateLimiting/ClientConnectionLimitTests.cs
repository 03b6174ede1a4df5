using System.Net;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Core.RateLimiting;
using ZcProxy.Tests.Balancing;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.RateLimiting;

/// <summary>Limits.MaxConnectionsPerClient (nginx limit_conn) on both transports: ZcProxy's (ZeroCopy on) and Kestrel's sockets.</summary>
public class ClientConnectionLimitTests
{
    private static string WriteConfig(ConfigDirectory dir, bool zeroCopy, string originUrl, int perClient)
        => dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "{{originUrl}}" } } } } }
            """,
            $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" }, "Limits": { "MaxConnectionsPerClient": {{perClient}} } """);

    /// <summary>A keep-alive GET on a raw connection; null when the proxy closed the connection instead of answering.</summary>
    private static async Task<string?> ExchangeAsync(Socket socket, string path)
    {
        try
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
            var buffer = new byte[4096];
            var text = new StringBuilder();
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(20));
                if (n == 0) return text.Length == 0 ? null : text.ToString();
                text.Append(Encoding.ASCII.GetString(buffer, 0, n));
                var s = text.ToString();
                int head = s.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (head > 0 && s.EndsWith("\r\n0\r\n\r\n", StringComparison.Ordinal)) return s; // chunked, complete
                if (head > 0 && s.Contains("Content-Length: ", StringComparison.OrdinalIgnoreCase))
                {
                    int start = s.IndexOf("Content-Length: ", StringComparison.OrdinalIgnoreCase) + 16;
                    int length = int.Parse(s[start..s.IndexOf('\r', start)]);
                    if (s.Length >= head + 4 + length) return s;
                }
            }
        }
        catch (SocketException)
        {
            return null; // reset by the proxy
        }
    }

    /// <summary>True when a new connection is closed unanswered (the reset may even beat connect's completion).</summary>
    private static async Task<bool> IsRefusedAsync(string proxyUrl, string path)
    {
        try
        {
            using var socket = await ConnectAsync(proxyUrl);
            return await ExchangeAsync(socket, path) is null;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    private static async Task<Socket> ConnectAsync(string proxyUrl)
    {
        var uri = new Uri(proxyUrl);
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, uri.Port);
        return socket;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ConnectionBeyondTheLimit_IsClosed_AndAClosedOneFreesItsPlace(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy, origin.Url, perClient: 2);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        using var first = await ConnectAsync(proxy.Url);
        using var second = await ConnectAsync(proxy.Url);
        Assert.Contains("A GET /1", await ExchangeAsync(first, "/1"));
        Assert.Contains("A GET /2", await ExchangeAsync(second, "/2"));
        Assert.True(await IsRefusedAsync(proxy.Url, "/3"));
        Assert.Equal(1, proxy.Get<RateLimitMetrics>().ConnectionRejections.Value);
        Assert.Contains("A GET /4", await ExchangeAsync(first, "/4")); // the two open ones keep working

        first.Close();
        await Poll.UntilAsync(async () =>
        {
            try
            {
                using var again = await ConnectAsync(proxy.Url);
                return await ExchangeAsync(again, "/5") is { } answer && answer.Contains("A GET /5", StringComparison.Ordinal);
            }
            catch (SocketException)
            {
                return false; // refused while the proxy has not yet seen the close
            }
        }, "a new connection to be served once one of the two closed");
        Assert.Contains("zcproxy_connection_limit_rejections_total", await BalancingTestConfig.Client.GetStringAsync(proxy.AdminUrl + "/metrics"));
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Fact]
    public async Task NoLimit_ByDefault()
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy: true, origin.Url, perClient: 0);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var sockets = new List<Socket>();
        try
        {
            for (int i = 0; i < 8; i++)
            {
                sockets.Add(await ConnectAsync(proxy.Url));
                Assert.Contains($"A GET /{i}", await ExchangeAsync(sockets[^1], "/" + i));
            }
        }
        finally
        {
            foreach (var s in sockets) s.Dispose();
        }
    }

    [Fact]
    public async Task Reload_AppliesANewLimitToNewConnections()
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        WriteConfig(dir, zeroCopy: true, origin.Url, perClient: 0);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var held = await ConnectAsync(proxy.Url);
        Assert.Contains("A GET /1", await ExchangeAsync(held, "/1"));

        WriteConfig(dir, zeroCopy: true, origin.Url, perClient: 1);
        await Poll.UntilAsync(() => proxy.Get<Core.Configuration.RuntimeOptions>().Current.Limits.MaxConnectionsPerClient == 1, "the reload");
        // A new limit counts from the connections opened after it (the one held above started under no limit).
        using var first = await ConnectAsync(proxy.Url);
        Assert.Contains("A GET /2", await ExchangeAsync(first, "/2"));
        Assert.True(await IsRefusedAsync(proxy.Url, "/3"));
    }
}
