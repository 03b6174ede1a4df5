using System.Diagnostics;
using System.Net.Sockets;

namespace ZcProxy.Tests.Fleet;

/// <summary>
/// A small network of its own on this machine: one network namespace per host, each with a veth pair whose other end
/// is on a bridge inside a hub namespace, addresses 10.77.0.0/24 inside the namespaces only (the host's own network is
/// not touched). Processes run inside with `ip netns exec`. The test reaches hosts through a relay in a client
/// namespace (Unix sockets, which are not bound to a namespace) with <see cref="CreateHttpClient"/>.
/// Cleanup is certain: <see cref="DisposeAsync"/> kills every process in the namespaces and deletes them (which removes
/// their veth ends and the bridge), also after a failure; and a lab left by a test process that died (SIGKILL) is swept by
/// the next lab, since names carry the creating process's pid.
/// </summary>
internal sealed class NetnsLab : IAsyncDisposable
{
    private const string NamePrefix = "zcf";
    private static int s_labs;

    private readonly string _id;
    private readonly List<string> _namespaces = [];
    private readonly List<Process> _processes = [];
    private readonly Dictionary<string, string> _relayed = new(StringComparer.Ordinal);
    private int _hosts;

    private NetnsLab()
    {
        _id = $"{Environment.ProcessId}-{Interlocked.Increment(ref s_labs)}";
        Directory = Path.Combine(Path.GetTempPath(), $"zcproxy-lab-{_id}");
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }
    private string Hub => $"{NamePrefix}-{_id}-hub";

    public static async Task<NetnsLab> CreateAsync()
    {
        await SweepAbandonedAsync();
        var lab = new NetnsLab();
        try
        {
            await lab.AddNamespaceAsync(lab.Hub);
            await Ip($"netns exec {lab.Hub} ip link add br0 type bridge");
            await Ip($"netns exec {lab.Hub} ip link set br0 up");
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
        return lab;
    }

    /// <summary>A new host on the bridge; returns its namespace name. Its address is 10.77.0.{number}.</summary>
    public async Task<string> AddHostAsync(string role, int number)
    {
        var ns = $"{NamePrefix}-{_id}-{role}";
        await AddNamespaceAsync(ns);
        int n = ++_hosts;
        // Interface names must fit in 15 bytes: a short random tag per lab keeps them unique on the machine.
        var outer = $"zv{Tag}{n}";
        await Ip($"link add {outer} netns {Hub} type veth peer name eth0 netns {ns}");
        await Ip($"netns exec {Hub} ip link set {outer} master br0 up");
        await Ip($"netns exec {ns} ip addr add 10.77.0.{number}/24 dev eth0");
        await Ip($"netns exec {ns} ip link set eth0 up");
        return ns;
    }

    private string Tag { get; } = Convert.ToHexString(BitConverter.GetBytes(Random.Shared.Next()))[..6].ToLowerInvariant();

    /// <summary>Starts a process inside a namespace; killed (whole) when the lab is disposed.</summary>
    public Process Start(string ns, string file, params string[] args)
    {
        var info = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", ns, file }.Concat(args)) info.ArgumentList.Add(a);
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        lock (_processes) _processes.Add(process);
        return process;
    }

    public string WriteFile(string name, string text)
    {
        var path = Path.Combine(Directory, name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>Makes HOST:PORT (inside the lab) reachable by <see cref="CreateHttpClient"/>'s clients; call before creating them.</summary>
    public async Task RelayAsync(string clientNs, params string[] hostPorts)
    {
        var args = new List<string> { "-c", FleetScripts.Relay };
        foreach (var hp in hostPorts)
        {
            var socket = Path.Combine(Directory, $"relay-{hp.Replace(':', '_')}.sock");
            _relayed[hp] = socket;
            args.Add($"{socket}={hp}");
        }
        Start(clientNs, "python3", [.. args]);
        await Infrastructure.Poll.UntilAsync(() => hostPorts.All(hp => File.Exists(_relayed[hp])), "the relay's sockets");
    }

    /// <summary>An HttpClient whose connections to relayed HOST:PORTs go through the relay into the lab.</summary>
    public HttpClient CreateHttpClient(TimeSpan? timeout = null) => new(new SocketsHttpHandler
    {
        UseProxy = false, UseCookies = false, AllowAutoRedirect = false,
        ConnectCallback = async (context, cancellationToken) =>
        {
            var key = $"{context.DnsEndPoint.Host}:{context.DnsEndPoint.Port}";
            if (!_relayed.TryGetValue(key, out var path)) throw new HttpRequestException($"{key} is not relayed into the lab");
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    }) { Timeout = timeout ?? TimeSpan.FromSeconds(30) };

    public static async Task KillAsync(Process process)
    {
        if (process.HasExited) return;
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
    }

    private async Task AddNamespaceAsync(string ns)
    {
        _namespaces.Add(ns); // before creating: a half-made lab is removed too
        await Ip($"netns add {ns}");
        await Ip($"netns exec {ns} ip link set lo up");
    }

    public async ValueTask DisposeAsync()
    {
        List<Process> processes;
        lock (_processes) processes = [.. _processes];
        foreach (var p in processes)
        {
            try { await KillAsync(p); } catch (InvalidOperationException) { }
            p.Dispose();
        }
        // Anything else still running inside (a child that escaped its parent) is killed before its namespace goes.
        foreach (var ns in Enumerable.Reverse(_namespaces)) await RemoveNamespaceAsync(ns);
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }

    private static async Task RemoveNamespaceAsync(string ns)
    {
        var (_, pids) = await RunAsync("ip", $"netns pids {ns}");
        foreach (var pid in pids.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            try { Process.GetProcessById(int.Parse(pid, System.Globalization.CultureInfo.InvariantCulture)).Kill(entireProcessTree: true); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        await RunAsync("ip", $"netns delete {ns}");
    }

    /// <summary>Labs of test processes that no longer run (killed mid-test): their namespaces are deleted.</summary>
    private static async Task SweepAbandonedAsync()
    {
        var (_, list) = await RunAsync("ip", "netns list");
        foreach (var line in list.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = line.Split(' ')[0];
            var parts = name.Split('-');
            if (parts.Length < 4 || parts[0] != NamePrefix || !int.TryParse(parts[1], out var pid)) continue;
            if (pid == Environment.ProcessId || File.Exists($"/proc/{pid}/status")) continue;
            await RemoveNamespaceAsync(name);
        }
    }

    private static async Task Ip(string args)
    {
        var (code, output) = await RunAsync("ip", args);
        if (code != 0) throw new InvalidOperationException($"ip {args}: exit {code}: {output.Trim()}");
    }

    private static async Task<(int Code, string Output)> RunAsync(string file, string args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args.Split(' ', StringSplitOptions.RemoveEmptyEntries)) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout + await stderr);
    }
}

/// <summary>A test that builds a network of namespaces: needs root, `ip`, python3 and etcd; skipped (saying why) otherwise.</summary>
public sealed class NetnsFactAttribute : FactAttribute
{
    public NetnsFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("ZCPROXY_SKIP_NETNS") == "1") Skip = "ZCPROXY_SKIP_NETNS=1";
        else if (Environment.UserName != "root") Skip = "network namespaces need root";
        else if (OnPath("ip") is null) Skip = "iproute2's `ip` is not on PATH";
        else if (OnPath("python3") is null) Skip = "python3 is not on PATH (the lab's origins and relay)";
        else if (OnPath("etcd") is null) Skip = "etcd is not on PATH (Debian: apt-get install etcd-server)";
    }

    internal static string? OnPath(string name) => (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(':', StringSplitOptions.RemoveEmptyEntries).Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
