using System.Net;
using ZcProxy.Core.Configuration;
using ZcProxy.Hosting.Systemd;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting.Systemd;

/// <summary>Listeners passed the way systemd passes them: fd 3, LISTEN_FDS=1, LISTEN_PID = the server's own pid.</summary>
public class SocketActivationTests
{
    /// <summary>
    /// Binds a listening socket before the proxy exists (as a .socket unit does), writes its port into the config,
    /// puts it at fd 3, and execs the proxy, so LISTEN_PID (the launcher's pid) is the proxy's pid.
    /// </summary>
    private const string Launcher = """
        import os, socket, sys
        config, command = sys.argv[1], sys.argv[2:]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        port = s.getsockname()[1]
        with open(config) as f: text = f.read()
        with open(config, "w") as f: f.write(text.replace("ACTIVATED_PORT", str(port)))
        print(f"launcher: fd 3 listens on 127.0.0.1:{port}", flush=True)
        if s.fileno() != 3:
            os.dup2(s.fileno(), 3)  # the duplicate is inheritable; the original closes on exec
        else:
            os.set_inheritable(3, True)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.execvp(command[0], command)
        """;

    [Fact]
    public async Task ListenFds_InheritedSocket_IsMatchedToListenEntry_AndServed()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteAtomically("zcproxy.json", $$"""
            {
              "Listen": [ { "Url": "http://127.0.0.1:ACTIVATED_PORT" } ],
              "Admin": { "Url": "http://127.0.0.1:0" },
              "ReverseProxy": { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } },
                                "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } }
            }
            """);
        var launcher = dir.WriteAtomically("launch.py", Launcher);

        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], launcher: ["python3", launcher, dir.MainFile]);

        var port = (await proxy.WaitForLineAsync(@"launcher: fd 3 listens on 127\.0\.0\.1:(\d+)")).Groups[1].Value;
        var (url, _) = await proxy.WaitForListenersAsync();
        Assert.Equal($"http://127.0.0.1:{port}", url);
        // The proxy could not have bound this port itself: the launcher's socket holds it.
        await proxy.WaitForLineAsync($@"socket activation: fd 3 \(127\.0\.0\.1:{port}\) serves http://127\.0\.0\.1:{port}");
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        Assert.Equal("A GET /activated", await client.GetStringAsync(url + "/activated"));
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080", "127.0.0.1", 8080, true)]
    [InlineData("http://127.0.0.1:8080", "127.0.0.1", 8081, false)]
    [InlineData("http://127.0.0.1:8080", "10.0.0.1", 8080, false)]
    [InlineData("http://*:80", "::", 80, true)]          // ListenStream=80 binds dual-stack [::]
    [InlineData("http://0.0.0.0:80", "0.0.0.0", 80, true)]
    [InlineData("http://localhost:8080", "::1", 8080, true)]
    [InlineData("http://[::1]:8080", "::ffff:127.0.0.1", 8080, false)]
    [InlineData("http://127.0.0.1:8080", "::ffff:127.0.0.1", 8080, true)]
    public void Matches_ByAddressAndPort(string url, string boundAddress, int boundPort, bool expected)
    {
        Assert.True(ListenUrl.TryParse(url, out var parsed, out _));
        Assert.Equal(expected, SocketActivation.Matches(parsed!, new IPEndPoint(IPAddress.Parse(boundAddress), boundPort)));
    }
}
