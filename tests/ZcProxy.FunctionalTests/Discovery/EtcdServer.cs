using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace ZcProxy.Tests.Discovery;

/// <summary>
/// A real single-node etcd (Debian's etcd-server) on 127.0.0.1 ports from the OS, with a throw-away data directory;
/// stoppable and restartable on the same ports and data. Keys are written through etcd's JSON gateway, as a backend
/// registering itself would.
/// </summary>
public sealed class EtcdServer : IAsyncDisposable
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "zcproxy-etcd-" + Guid.NewGuid().ToString("N")[..12]);
    // Held while the server lives: etcd restarts on the same ports, and no other test's server takes them meanwhile.
    private readonly ReservedPort _clientPort = new(), _peerPort = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private Process? _process;

    public string Url => $"http://127.0.0.1:{_clientPort.Port}";

    public static async Task<EtcdServer> StartAsync()
    {
        var server = new EtcdServer();
        await server.RestartAsync();
        return server;
    }

    public async Task RestartAsync()
    {
        var info = new ProcessStartInfo(EtcdAvailability.Binary!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--name", "test", "--data-dir", _dataDir,
                     "--listen-client-urls", Url, "--advertise-client-urls", Url,
                     "--listen-peer-urls", $"http://127.0.0.1:{_peerPort.Port}", "--initial-advertise-peer-urls", $"http://127.0.0.1:{_peerPort.Port}",
                     "--initial-cluster", $"test=http://127.0.0.1:{_peerPort.Port}", "--log-level", "error" })
            info.ArgumentList.Add(a);
        _process = Process.Start(info)!;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await Poll.UntilAsync(async () =>
        {
            try { return (await _http.GetAsync($"{Url}/health")).IsSuccessStatusCode; }
            catch (HttpRequestException) { return false; }
        }, "etcd to answer /health");
    }

    /// <summary>Ends etcd like a crash or `systemctl stop etcd` would (SIGKILL: no goodbye to clients).</summary>
    public async Task StopAsync()
    {
        if (_process is null) return;
        _process.Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
        _process = null;
    }

    /// <summary>A partition as the proxy sees it: etcd's connections stay open but nothing answers (SIGSTOP; SIGCONT ends it).</summary>
    public async Task SetFrozenAsync(bool frozen)
    {
        using var kill = Process.Start("kill", [frozen ? "-STOP" : "-CONT", _process!.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        await kill.WaitForExitAsync();
    }

    public async Task<long> GrantLeaseAsync(int ttlSeconds)
    {
        using var doc = await PostAsync("/v3/lease/grant", new { TTL = ttlSeconds });
        return long.Parse(doc.RootElement.GetProperty("ID").GetString()!);
    }

    public async Task KeepAliveAsync(long lease) => (await PostAsync("/v3/lease/keepalive", new { ID = lease })).Dispose();

    public async Task PutAsync(string key, string value, long lease = 0) =>
        (await PostAsync("/v3/kv/put", new { key = B64(key), value = B64(value), lease })).Dispose();

    public async Task DeleteAsync(string key) => (await PostAsync("/v3/kv/deleterange", new { key = B64(key) })).Dispose();

    private async Task<JsonDocument> PostAsync(string path, object body)
    {
        using var response = await _http.PostAsJsonAsync(Url + path, body);
        response.EnsureSuccessStatusCode();
        return await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync());
    }

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _http.Dispose();
        _clientPort.Dispose();
        _peerPort.Dispose();
        try { Directory.Delete(_dataDir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>A test that needs the etcd binary: skipped, with the reason, when it is missing (.ci/run installs etcd-server).</summary>
public sealed class EtcdFactAttribute : FactAttribute
{
    public EtcdFactAttribute()
    {
        if (EtcdAvailability.Binary is null) Skip = "etcd is not on PATH (Debian: apt-get install etcd-server; .ci/run installs it)";
    }
}

/// <inheritdoc cref="EtcdFactAttribute"/>
public sealed class EtcdTheoryAttribute : TheoryAttribute
{
    public EtcdTheoryAttribute()
    {
        if (EtcdAvailability.Binary is null) Skip = "etcd is not on PATH (Debian: apt-get install etcd-server; .ci/run installs it)";
    }
}

internal static class EtcdAvailability
{
    public static readonly string? Binary = (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(':', StringSplitOptions.RemoveEmptyEntries).Select(d => Path.Combine(d, "etcd")).FirstOrDefault(File.Exists);
}
