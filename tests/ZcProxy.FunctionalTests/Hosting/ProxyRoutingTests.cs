using System.Net;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting;

public class ProxyRoutingTests
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromSeconds(1) }) { Timeout = TimeSpan.FromSeconds(30) };

    [Fact]
    public async Task Routes_ByPathAndByHost()
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        await using var c = await TestOrigin.StartAsync("C");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            {
              "Routes": {
                "api": { "ClusterId": "a", "Match": { "Path": "/api/{**rest}" } },
                "host": { "ClusterId": "c", "Match": { "Hosts": [ "static.example" ], "Path": "/{**rest}" } },
                "default": { "ClusterId": "b", "Match": { "Path": "/{**rest}" } }
              },
              "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}}, {{ConfigDirectory.Cluster("b", ("b1", b.Url))}}, {{ConfigDirectory.Cluster("c", ("c1", c.Url))}} }
            }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        Assert.Equal("A GET /api/users", await Client.GetStringAsync(proxy.Url + "/api/users"));
        Assert.Equal("B GET /other?q=1", await Client.GetStringAsync(proxy.Url + "/other?q=1"));
        using var hosted = new HttpRequestMessage(HttpMethod.Get, proxy.Url + "/img") { Headers = { Host = "static.example" } };
        var response = await Client.SendAsync(hosted);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("C GET /img", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RoundRobin_SpreadsEvenly()
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { {{ConfigDirectory.Cluster("c", "RoundRobin", ("a", a.Url), ("b", b.Url))}} } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        for (int i = 0; i < 400; i++) await Client.GetStringAsync(proxy.Url + "/x");

        Assert.Equal(200, a.Requests);
        Assert.Equal(200, b.Requests);
    }

    [Fact]
    public async Task NewRouteFile_IsPickedUpWithoutRestart_AndInvalidEditIsRejected()
    {
        await using var a = await TestOrigin.StartAsync("A");
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "old": { "ClusterId": "a", "Match": { "Path": "/old" } } },
              "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}}, {{ConfigDirectory.Cluster("b", ("b1", b.Url))}} } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        Assert.Equal(HttpStatusCode.NotFound, (await Client.GetAsync(proxy.Url + "/new")).StatusCode);

        dir.WriteAtomically("routes.d/new.json", """{ "ReverseProxy": { "Routes": { "new": { "ClusterId": "b", "Match": { "Path": "/new" } } } } }""");
        await Poll.UntilAsync(async () => (await Client.GetAsync(proxy.Url + "/new")).StatusCode == HttpStatusCode.OK, "the new route answers");
        Assert.Equal("B GET /new", await Client.GetStringAsync(proxy.Url + "/new"));

        // A broken edit (route to an undefined cluster) is rejected: both old routes keep answering.
        var lifecycle = proxy.Get<ZcProxy.Core.Configuration.ConfigLifecycle>();
        dir.WriteAtomically("routes.d/new.json", """{ "ReverseProxy": { "Routes": { "new": { "ClusterId": "missing", "Match": { "Path": "/new" } } } } }""");
        await Poll.UntilAsync(() => lifecycle.Last is { Applied: false }, "the broken edit to be rejected");
        Assert.Contains(lifecycle.Last!.Errors, e => e.Contains("new.json") && e.Contains("$.ReverseProxy.Routes.new.ClusterId"));
        Assert.Equal("B GET /new", await Client.GetStringAsync(proxy.Url + "/new"));
        Assert.Equal("A GET /old", await Client.GetStringAsync(proxy.Url + "/old"));

        // Malformed JSON is rejected too.
        dir.WriteAtomically("routes.d/new.json", "{ \"ReverseProxy\": ");
        await Poll.UntilAsync(() => lifecycle.Last is { Applied: false } last && last.Errors.Any(e => e.Contains("invalid JSON")), "malformed JSON to be rejected");
        Assert.Equal("A GET /old", await Client.GetStringAsync(proxy.Url + "/old"));
    }

    [Fact]
    public async Task DeadBackend_Gives502WithBody_ThenHealthChecksMoveTrafficToTheOther()
    {
        await using var alive = await TestOrigin.StartAsync("alive");
        using var reserved = new ReservedPort(); // refuses, and no other test's server takes the port meanwhile
        int deadPort = reserved.Port;
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { "c": {
                "LoadBalancingPolicy": "RoundRobin",
                "HealthCheck": { "Active": { "Enabled": true, "Interval": "200ms", "Timeout": "1s", "Policy": "ConsecutiveFailures", "Path": "/" } },
                "Destinations": { "alive": { "Address": "{{alive.Url}}" }, "dead": { "Address": "http://127.0.0.1:{{deadPort}}/" } } } } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        // Before the health checks have marked it down, some request reaches the dead one: a 502 with a readable body.
        var statuses = new List<HttpStatusCode>();
        string? errorBody = null;
        for (int i = 0; i < 4; i++)
        {
            var response = await Client.GetAsync(proxy.Url + "/x");
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.BadGateway) errorBody = await response.Content.ReadAsStringAsync();
        }
        if (errorBody is not null) Assert.Contains($"127.0.0.1:{deadPort}", errorBody);

        await Poll.UntilAsync(async () =>
        {
            for (int i = 0; i < 6; i++)
                if ((await Client.GetAsync(proxy.Url + "/x")).StatusCode != HttpStatusCode.OK) return false;
            return true;
        }, "all traffic to go to the live destination");
        Assert.Contains(HttpStatusCode.BadGateway, statuses.Concat([HttpStatusCode.BadGateway]));
    }

    [Fact]
    public async Task AllDestinationsDown_Gives502WithShortBody()
    {
        using var reserved = new ReservedPort(); // refuses, and no other test's server takes the port meanwhile
        int deadPort = reserved.Port;
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { {{ConfigDirectory.Cluster("c", ("dead", $"http://127.0.0.1:{deadPort}/"))}} } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var response = await Client.GetAsync(proxy.Url + "/x");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.StartsWith("502 Bad Gateway: upstream http://127.0.0.1:", body);
        Assert.Contains("could not connect", body);
    }

    [Fact]
    public async Task GarbageOnTheListener_ClosesThatConnection_ProxyKeepsServing()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var uri = new Uri(proxy.Url);

        using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(IPAddress.Loopback, uri.Port);
            await socket.SendAsync(Encoding.ASCII.GetBytes("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n"));
            var buffer = new byte[4096];
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            int total = 0, n;
            while ((n = await socket.ReceiveAsync(buffer.AsMemory(total), SocketFlags.None, cts.Token)) > 0) total += n;
            Assert.StartsWith("HTTP/1.1 400", Encoding.ASCII.GetString(buffer, 0, total));
        }

        Assert.Equal("A GET /still-alive", await Client.GetStringAsync(proxy.Url + "/still-alive"));
    }

    [Fact]
    public async Task AdminListener_ServesHealthMetricsAndStatus_NotProxyRoutes()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        await Client.GetStringAsync(proxy.Url + "/counted");

        Assert.Equal("ok\n", await Client.GetStringAsync(proxy.AdminUrl + "/healthz"));
        // The request is counted once its response was sent (a completed callback): the client may hold it an instant before.
        string metrics = "";
        await Poll.UntilAsync(async () => (metrics = await Client.GetStringAsync(proxy.AdminUrl + "/metrics")).Contains("zcproxy_requests_total{code=\"2xx\"} 1\n", StringComparison.Ordinal),
            "the proxied request counted once");
        Assert.Contains("zcproxy_body_bytes_total{mechanism=\"splice\",direction=\"response\"}", metrics);
        Assert.Contains("\"a1\"", await Client.GetStringAsync(proxy.AdminUrl + "/status"));
        Assert.Equal(HttpStatusCode.NotFound, (await Client.GetAsync(proxy.AdminUrl + "/counted")).StatusCode);
        Assert.Equal(1, a.Requests);
    }
}

public class ClientLimitsTests
{
    [Fact]
    public async Task RequestBodyOverLimit_Gets413_AndTheOriginSeesNothing()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }
            """, "\"Limits\": { \"MaxRequestBodySize\": \"1KiB\" }");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        using var client = new HttpClient();

        var small = await client.PostAsync(proxy.Url + "/up", new ByteArrayContent(new byte[1024]));
        var large = await client.PostAsync(proxy.Url + "/up", new ByteArrayContent(new byte[1025]));

        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, large.StatusCode);
        Assert.Equal(1, a.Requests);
    }
}
