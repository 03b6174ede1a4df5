using System.Diagnostics;
using ZcProxy.Core.Configuration;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting.Systemd;

/// <summary>The shipped unit and packaged config: what systemd and the proxy will read on an edge node.</summary>
public class UnitFileTests
{
    private static readonly string Repo = FindRepo();

    /// <summary>[Service] directives in order (a key may repeat, e.g. SystemCallFilter=).</summary>
    private static List<(string Key, string Value)> Section(string file, string section)
    {
        var result = new List<(string, string)>();
        string? current = null;
        foreach (var raw in File.ReadAllLines(file))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] is '#' or ';') continue;
            if (line.StartsWith('[')) { current = line.Trim('[', ']'); continue; }
            var eq = line.IndexOf('=');
            if (current == section && eq > 0) result.Add((line[..eq], line[(eq + 1)..]));
        }
        return result;
    }

    [Fact]
    public void Service_IsNotifyType_WithCheckReloadWatchdogAndDedicatedUser()
    {
        var service = Section(Path.Combine(Repo, "ZcProxy.service"), "Service").ToLookup(d => d.Key, d => d.Value);

        Assert.Equal("notify", Assert.Single(service["Type"]));
        Assert.Equal("/usr/bin/zcproxy check --config /etc/zcproxy/zcproxy.json", Assert.Single(service["ExecStartPre"]));
        Assert.Equal("/usr/bin/zcproxy --config /etc/zcproxy/zcproxy.json", Assert.Single(service["ExecStart"]));
        Assert.Equal("/bin/kill -HUP $MAINPID", Assert.Single(service["ExecReload"]));
        Assert.Equal("on-failure", Assert.Single(service["Restart"]));
        Assert.Equal("zcproxy", Assert.Single(service["User"]));
        Assert.Equal("zcproxy", Assert.Single(service["CacheDirectory"]));
        // ConfigurationDirectory= would mount /etc/zcproxy writable despite ProtectSystem=strict (seen under systemd 252).
        Assert.Empty(service["ConfigurationDirectory"]);
        Assert.NotEmpty(service["WatchdogSec"]);
        // .NET does not die of an external SIGABRT (systemd's default watchdog signal): the restart would wait TimeoutStopSec.
        Assert.Equal("SIGKILL", Assert.Single(service["WatchdogSignal"]));
        Assert.NotEmpty(service["LimitNOFILE"]);
        Assert.Equal("CAP_NET_BIND_SERVICE", Assert.Single(service["CapabilityBoundingSet"]));
        Assert.Equal("CAP_NET_BIND_SERVICE", Assert.Single(service["AmbientCapabilities"]));
        foreach (var (key, value) in new[] { ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                     ("ProtectKernelTunables", "yes"), ("ProtectKernelModules", "yes"), ("ProtectKernelLogs", "yes") })
            Assert.Equal(value, Assert.Single(service[key]));
        Assert.Contains("@system-service", service["SystemCallFilter"]);
        Assert.Equal("AF_UNIX AF_INET AF_INET6", Assert.Single(service["RestrictAddressFamilies"]));
        Assert.Empty(service["MemoryDenyWriteExecute"]); // the JIT needs writable-then-executable memory
    }

    [Fact]
    public void Socket_IsNotPartOfTheService_SoARestartKeepsThePortsOpen()
    {
        var unit = Section(Path.Combine(Repo, "packaging", "zcproxy.socket"), "Unit");
        // PartOf=zcproxy.service would restart the socket with the service: connections reset, then refused.
        Assert.DoesNotContain(unit, d => d.Key == "PartOf");
    }

    [Fact]
    public async Task PackagedConfig_IsValid_HasNoDemo_AndDrainsWithinTimeoutStopSec()
    {
        var config = Path.Combine(Repo, "packaging", "etc", "zcproxy.json");
        var (code, output) = await ProxyProcess.RunAsync("check", "--config", config);
        Assert.True(code == 0, output);

        var errors = new List<ConfigError>();
        var loaded = ConfigFileLoader.Load(config, errors);
        Assert.Empty(errors);
        Assert.Null(loaded!.Options.Demo);
        Assert.Equal("/var/cache/zcproxy", loaded.Options.Cache?.Path);
        var service = Section(Path.Combine(Repo, "ZcProxy.service"), "Service");
        var stopTimeout = TimeSpan.FromSeconds(int.Parse(service.Single(d => d.Key == "TimeoutStopSec").Value.TrimEnd('s')));
        Assert.True(loaded.Options.DrainTimeout < stopTimeout, $"DrainTimeout {loaded.Options.DrainTimeout} must end before systemd's SIGKILL at {stopTimeout}");
    }

    [Fact]
    public async Task SystemdAnalyzeVerify_PassesForServiceAndSocket()
    {
        var info = new ProcessStartInfo("bash", [Path.Combine(Repo, "packaging", "verify-units.sh")])
            { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"{await stdout}\n{await stderr}");
        Assert.Contains("systemd-analyze verify: zcproxy.service and zcproxy.socket OK", await stdout);
    }

    private static string FindRepo()
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "ZcProxy.sln"))) dir = Path.GetDirectoryName(dir)!;
        return dir;
    }
}
