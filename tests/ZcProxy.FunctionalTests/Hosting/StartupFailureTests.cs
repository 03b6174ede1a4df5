using System.Net;
using System.Net.Sockets;

namespace ZcProxy.Tests.Hosting;

/// <summary>
/// The real executable, started where it cannot run: it says so in one line on stderr naming what and where (like
/// nginx's "[emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)") and exits 1: no stack trace, no abort.
/// </summary>
public class StartupFailureTests
{
    private const string NoRoutes = """ "ReverseProxy": { "Routes": {}, "Clusters": {} } """;

    [Theory]
    [InlineData("$.Listen[0].Url")]
    [InlineData("$.Admin.Url")]
    [InlineData("$.Demo.Origins[0]")]
    public async Task PortInUse_OneLineNamingTheEntryAndAddress_Exit1(string entry)
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        var busy = $"http://127.0.0.1:{((IPEndPoint)holder.LocalEndpoint).Port}";
        string Url(string at) => at == entry ? busy : "http://127.0.0.1:0";
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, $$"""
            { "Listen": [ { "Url": "{{Url("$.Listen[0].Url")}}" } ], "Admin": { "Url": "{{Url("$.Admin.Url")}}" },
              "Demo": { "Origins": [ "{{Url("$.Demo.Origins[0]")}}" ], "LargeFileSize": "4KiB" },
              {{NoRoutes}} }
            """);

        var line = await FailedStartAsync(dir.MainFile);

        Assert.Equal($"zcproxy: not started: {dir.MainFile}: {entry}: bind() to {busy[7..]} failed (98: Address already in use)", line);
    }

    [Fact]
    public async Task AccessLogNotWritable_OneLineNamingThePath_Exit1()
    {
        using var dir = new ConfigDirectory();
        var notADirectory = dir.WriteAtomically("plain-file", "");
        var accessLog = Path.Combine(notADirectory, "access.log");
        dir.WriteMain("""{ "Routes": {}, "Clusters": {} }""", $$""" "AccessLog": { "Path": "{{accessLog}}" } """);

        var line = await FailedStartAsync(dir.MainFile);

        Assert.StartsWith($"zcproxy: not started: {dir.MainFile}: $.AccessLog.Path: cannot open '{accessLog}' for appending: ", line);
    }

    [Fact]
    public async Task CacheDirectoryNotUsable_OneLineNamingThePath_Exit1()
    {
        using var dir = new ConfigDirectory();
        var notADirectory = dir.WriteAtomically("plain-file", "");
        var cache = Path.Combine(notADirectory, "cache");
        dir.WriteMain("""{ "Routes": {}, "Clusters": {} }""", $$""" "Cache": { "Path": "{{cache}}" } """);

        var line = await FailedStartAsync(dir.MainFile);

        Assert.StartsWith($"zcproxy: not started: {dir.MainFile}: $.Cache.Path: cannot use '{cache}' as the cache directory: ", line);
    }

    [Theory]
    [InlineData("missing.pem", "Could not find file")]
    [InlineData("a-directory.pem", "")]
    public async Task CertificateMissingOrUnreadable_OneLineNamingTheFile_Exit1(string certificate, string reason)
    {
        using var dir = new ConfigDirectory();
        Directory.CreateDirectory(Path.Combine(dir.Root, "a-directory.pem"));
        dir.WriteAtomically(dir.MainFile, $$"""
            { "Listen": [ { "Url": "https://127.0.0.1:0", "Certificate": "{{certificate}}" } ], {{NoRoutes}} }
            """);

        var line = await FailedStartAsync(dir.MainFile);

        Assert.StartsWith($"zcproxy: not started: {dir.MainFile}: $.Listen[0].Certificate: cannot load the certificate: {reason}", line);
        Assert.Contains(Path.Combine(dir.Root, certificate), line);
    }

    /// <summary>Starts the proxy, expects exit 1 with exactly one stderr line and no stack frame anywhere; returns the line.</summary>
    private static async Task<string> FailedStartAsync(string mainFile)
    {
        using var proxy = ProxyProcess.Start(["--config", mainFile]);
        await proxy.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.True(proxy.ExitCode == 1, $"exit code {proxy.ExitCode}:\n{proxy.Output}");
        Assert.DoesNotContain("   at ", proxy.Output);
        Assert.True(proxy.ErrorLines.Count == 1, $"expected one line on stderr:\n{proxy.Output}");
        return proxy.ErrorLines.Single();
    }
}
