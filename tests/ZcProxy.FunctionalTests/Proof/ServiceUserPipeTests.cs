using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;
using ZcProxy.Tests.Infrastructure;
using RawHttpClient = ZcProxy.Tests.Transport.RawHttpClient;

namespace ZcProxy.Tests.Proof;

/// <summary>
/// Splice pipes under the shipped unit's unprivileged user (User=zcproxy in ZcProxy.service): the per-user pipe
/// quota (fs.pipe-user-pages-soft, 64 MiB by default) binds it, not root. The real zcproxy process runs as an unprivileged
/// user of this test run's own (<see cref="ServiceUserFactAttribute.Uid"/>); many keep-alive connections each get a
/// spliced body and then sit idle, and a big download follows.
/// </summary>
[Collection(StraceProofCollection.Name)]
public sealed class ServiceUserPipeTests(ITestOutputHelper output)
{
    /// <summary>Were each idle connection to keep a 1 MiB pipe, 120 of them would hold 120 MiB: past the default quota.</summary>
    private const int IdleConnections = 120;
    private const long SmallBody = 256 * 1024; // above the default SpliceThreshold: spliced
    private const long BigBody = 64L << 20;
    /// <summary>SplicePipePool keeps at most this many idle pipes.</summary>
    private const int MaxIdlePipes = 16;
    /// <summary>fds the runtime may open while the connections are made, unrelated to them.</summary>
    private const int MaxUnrelatedFds = 4;

    [ServiceUserFact]
    public async Task AsTheServiceUser_IdleKeepAliveConnectionsHoldNoPipe_AndABigBodyStillMovesInLargeSplices()
    {
        await using var origin = await TestOrigin.StartAsync("origin", app => app.MapGet("/body", async (HttpContext c, long size) =>
        {
            c.Response.ContentLength = size;
            foreach (var piece in BodyPattern.Pieces(size)) await c.Response.Body.WriteAsync(piece, c.RequestAborted);
        }));
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "o", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { {{ConfigDirectory.Cluster("o", ("o1", origin.Url))}} } }
            """, """ "ZeroCopy": { "Enabled": true }, "AccessLog": { "Path": "off" } """);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], launcher: ServiceUserFactAttribute.Launcher);
        var (proxyUrl, adminUrl) = await proxy.WaitForListenersAsync();
        var url = new Uri(proxyUrl);
        Assert.Contains($"Uid:\t{ServiceUserFactAttribute.Uid}\t", await File.ReadAllTextAsync($"/proc/{proxy.Pid}/status")); // really unprivileged

        // Warm-up on a connection that closes: the upstream connection, the reactor, one pipe exist from now on.
        int listeners = Fds(proxy.Pid, url.Port).Sockets;
        using (var warm = await RawHttpClient.ConnectAsync(url))
        {
            await warm.SendAsync(RawHttpClient.Get($"/body?size={SmallBody}"));
            Assert.Equal(BodyPattern.Sha256(SmallBody), (await warm.ReadResponseAsync()).Sha);
        }
        await WaitForFdsAsync(proxy.Pid, url.Port, c => c.Sockets == listeners + 1, $"only the {listeners} listeners and the pooled upstream connection left");
        // The admin endpoints too: their first request loads assemblies (an fd each), which must not count below.
        await LeasedPipesAsync(adminUrl);
        var before = Fds(proxy.Pid, url.Port);

        var idle = new List<Socket>();
        try
        {
            var buffer = new byte[64 * 1024];
            for (int i = 0; i < IdleConnections; i++) idle.Add(await GetAndKeepOpenAsync(url, SmallBody, buffer));
            // No pipe stays with an idle connection: every one is back in the pool once the responses are done.
            await Poll.UntilAsync(async () => await LeasedPipesAsync(adminUrl) == 0, "every splice pipe back in the pool");
            var after = Fds(proxy.Pid, url.Port);
            // Pipes and upstream connections belong to transfers, not client connections. When a request arrives before
            // the previous one's upstream connection and pipe are back in their pools (a race the machine's load
            // decides), a second one is opened and then kept idle: bounded by the pools, whatever the connection count.
            double perConnection = (double)(after.Total - after.OtherSockets - after.Pipes - (before.Total - before.OtherSockets - before.Pipes)) / IdleConnections;
            output.WriteLine($"proxy fds before: {before}; after {IdleConnections} idle keep-alive connections: {after}; {perConnection:0.00} per idle connection");
            Assert.True(after.Pipes - before.Pipes <= 2 * MaxIdlePipes, $"{after.Pipes - before.Pipes} more pipe ends with {IdleConnections} idle connections");
            Assert.Equal(before.ClientSockets + IdleConnections, after.ClientSockets);
            // Exactly one fd per idle connection (its socket; pipes and upstream sockets are bounded above), plus at most a handful the runtime opens on its own
            // schedule (a thread's eventfd, a log file): a per-connection cost would add IdleConnections, not a few.
            int nonClientGrowth = (int)Math.Round(perConnection * IdleConnections) - IdleConnections;
            Assert.True(nonClientGrowth <= MaxUnrelatedFds, $"{nonClientGrowth} fds beyond one per idle connection ({perConnection:0.00} per connection)");

            // A big download while every idle connection stays open: a full-sized pipe, so few, large splices.
            using var client = await RawHttpClient.ConnectAsync(url);
            using var strace = await StraceSession.AttachAsync(proxy.Pid, "splice");
            await client.SendAsync(RawHttpClient.Get($"/body?size={BigBody}"));
            var response = await client.ReadResponseAsync();
            var log = await strace.StopAsync();
            Assert.Equal((200, BigBody, BodyPattern.Sha256(BigBody)), (response.Status, response.BodyLength, response.Sha));
            var intoClient = log.Calls.Where(c => c.Name == "splice" && c.Result > 0 && StraceLog.IsSocketWithLocalPort(c.Argument(2), url.Port)).ToList();
            output.WriteLine($"{BigBody >> 20} MiB body: {log.CallsOf("splice")} splice calls in all, {intoClient.Count} moved bytes into the client socket " +
                $"({intoClient.Sum(c => c.Result) / Math.Max(1, intoClient.Count) / 1024} KiB each on average)");
            output.WriteLine(log.Summary);
            // All but the bytes that came with the head in its one read (sent as data ahead of the splice).
            Assert.InRange(intoClient.Sum(c => c.Result), BigBody - ZcProxy.Core.Upstream.UpstreamConnection.HeadReadSize, BigBody);
            // The quota-starved pipes of the failure got 8 KiB (16,384 splices into the client for 64 MiB); 64 KiB is the kernel's default pipe.
            Assert.True(intoClient.Count <= BigBody / (64 * 1024), $"{intoClient.Count} splices into the client: pipes smaller than the kernel's default");
        }
        finally
        {
            foreach (var socket in idle) socket.Dispose();
        }
    }

    /// <summary>
    /// Another process of the same user has used up the pipe quota, so the kernel would give the proxy 2-page pipes
    /// (thousands of splices for a big body) and refuse F_SETPIPE_SZ: the proxy copies instead, says so once in its
    /// log and in zcproxy_splice_pipe_shortages_total, and every body stays byte-exact.
    /// </summary>
    [ServiceUserFact]
    public async Task AsTheServiceUser_PipeQuotaUsedUpByAnotherProcess_BodiesAreCopiedNotSplicedThroughTinyPipes()
    {
        if (!File.Exists("/usr/bin/python3")) return; // the quota hog below is a python3 one-liner
        const long Size = 4L << 20;
        await using var origin = await TestOrigin.StartAsync("origin", app => app.MapGet("/body", async (HttpContext c, long size) =>
        {
            c.Response.ContentLength = size;
            foreach (var piece in BodyPattern.Pieces(size)) await c.Response.Body.WriteAsync(piece, c.RequestAborted);
        }));
        // 1 MiB pipes until F_SETPIPE_SZ is refused, then default ones until the kernel hands out 2-page pipes: past the soft quota.
        using var hog = QuotaHog.Start("""
            import fcntl, os, sys
            held = []
            while True:
                r, w = os.pipe(); held.append((r, w))
                try: fcntl.fcntl(w, 1031, 1 << 20)
                except OSError: break
            while fcntl.fcntl(held[-1][1], 1032) >= 65536:
                held.append(os.pipe())
            print("quota used up with", len(held), "pipes", flush=True)
            sys.stdin.read()
            """);
        output.WriteLine(await hog.ReadyAsync());
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "o", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { {{ConfigDirectory.Cluster("o", ("o1", origin.Url))}} } }
            """, """ "ZeroCopy": { "Enabled": true }, "AccessLog": { "Path": "off" } """);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], launcher: ServiceUserFactAttribute.Launcher);
        var (proxyUrl, adminUrl) = await proxy.WaitForListenersAsync();

        using var client = await RawHttpClient.ConnectAsync(new Uri(proxyUrl));
        for (int i = 0; i < 2; i++)
        {
            await client.SendAsync(RawHttpClient.Get($"/body?size={Size}"));
            Assert.Equal((200, Size, BodyPattern.Sha256(Size)), ((await client.ReadResponseAsync()) is var r ? (r.Status, r.BodyLength, r.Sha) : default));
        }
        using var admin = new HttpClient();
        // A body's bytes are counted when its transfer ends, which may be just after the client read the last byte;
        // the warning reaches the output the proxy's logger writes asynchronously: wait for both, then check exactly.
        var copied = $"zcproxy_body_bytes_total{{mechanism=\"copy\",direction=\"response\"}} {2 * Size}\n";
        string metrics = "";
        await Poll.UntilAsync(async () => (metrics = await admin.GetStringAsync(adminUrl + "/metrics")).Contains(copied, StringComparison.Ordinal),
            "both bodies counted as copied");
        const string Warning = "splice pipes: bodies are copied for now: the kernel granted a 8192-byte pipe";
        await Poll.UntilAsync(() => proxy.CountLines(Warning) > 0, "the pipe shortage logged");
        output.WriteLine(string.Join("\n", metrics.Split('\n').Where(l => l.Contains("splice") || l.Contains("mechanism=\"copy\",direction=\"response\""))));
        Assert.Contains("zcproxy_body_bytes_total{mechanism=\"splice\",direction=\"response\"} 0\n", metrics);
        Assert.Contains("zcproxy_splice_pipe_shortages_total 2\n", metrics);
        Assert.Equal(1, proxy.CountLines(Warning));
    }

    /// <summary>One GET on a new connection, read to the end of its body; the connection stays open (idle, keep-alive).</summary>
    private static async Task<Socket> GetAndKeepOpenAsync(Uri url, long size, byte[] buffer)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, url.Port));
        await socket.SendAsync(Encoding.ASCII.GetBytes(RawHttpClient.Get($"/body?size={size}")));
        var head = new StringBuilder();
        long received = 0, headLength = -1;
        while (headLength < 0 || received < headLength + size)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory());
            if (n == 0) throw new IOException("the proxy closed the connection");
            received += n;
            if (headLength < 0)
            {
                head.Append(Encoding.ASCII.GetString(buffer, 0, n));
                int end = head.ToString().IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (end >= 0) headLength = end + 4;
            }
        }
        Assert.StartsWith("HTTP/1.1 200", head.ToString());
        Assert.Equal(headLength + size, received); // nothing past the body: the connection is idle now
        return socket;
    }

    /// <summary>A python3 script run as the service user that holds its pipes until disposed (stdin closed, then killed by pid).</summary>
    internal sealed class QuotaHog : IDisposable
    {
        private readonly System.Diagnostics.Process _process;

        private QuotaHog(System.Diagnostics.Process process) => _process = process;

        public static QuotaHog Start(string script)
        {
            var info = new System.Diagnostics.ProcessStartInfo(ServiceUserFactAttribute.Launcher[0])
            { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in ServiceUserFactAttribute.Launcher.Skip(1).Concat(["/usr/bin/python3", "-c", script])) info.ArgumentList.Add(a);
            return new QuotaHog(System.Diagnostics.Process.Start(info)!);
        }

        public async Task<string> ReadyAsync()
            => await _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)) ?? throw new InvalidOperationException("the quota hog exited");

        public void Dispose()
        {
            try
            {
                _process.StandardInput.Close();
                if (!_process.WaitForExit(5000)) _process.Kill();
            }
            catch (InvalidOperationException) { }
            _process.Dispose();
        }
    }

    private static async Task<long> LeasedPipesAsync(string adminUrl)
    {
        using var client = new HttpClient();
        var metrics = await client.GetStringAsync(adminUrl + "/metrics");
        var match = System.Text.RegularExpressions.Regex.Match(metrics, @"^zcproxy_splice_pipes\{state=""leased""\} (\d+)", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.True(match.Success, "zcproxy_splice_pipes{state=\"leased\"} is not in the metrics");
        return long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <param name="ClientSockets">Connections accepted on the proxy's port (its listener excluded).</param>
    private readonly record struct FdCounts(int Total, int Sockets, int Pipes, int ClientSockets)
    {
        /// <summary>Listeners, upstream connections and the rest.</summary>
        public int OtherSockets => Sockets - ClientSockets;
        public override string ToString() => $"{Total} (sockets {Sockets}, of which client connections {ClientSockets}; pipe ends {Pipes})";
    }

    /// <summary>Polls the fd counts; on timeout the message lists every fd the proxy holds, so it says what stayed.</summary>
    private static async Task WaitForFdsAsync(int pid, int proxyPort, Func<FdCounts, bool> condition, string what)
    {
        try { await Poll.UntilAsync(() => condition(Fds(pid, proxyPort)), what); }
        catch (TimeoutException e) { throw new TimeoutException($"{e.Message}; now {Fds(pid, proxyPort)}:\n{DescribeFds(pid)}", e); }
    }

    /// <summary>Each fd's target; a TCP socket with its local and remote port and state (from /proc/PID/net/tcp).</summary>
    private static string DescribeFds(int pid)
    {
        var tcp = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in File.ReadLines($"/proc/{pid}/net/tcp").Skip(1).Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)))
            tcp.TryAdd($"socket:[{f[9]}]", $"tcp {Convert.ToInt32(f[1].Split(':')[1], 16)} -> {Convert.ToInt32(f[2].Split(':')[1], 16)} state {f[3]}");
        return string.Join("\n", Directory.GetFiles($"/proc/{pid}/fd").Select(f =>
        {
            string target;
            try { target = new FileInfo(f).LinkTarget ?? ""; } catch (IOException) { target = "(closed)"; }
            return $"  fd {Path.GetFileName(f)}: {target}{(tcp.TryGetValue(target, out var t) ? " " + t : "")}";
        }));
    }

    private static FdCounts Fds(int pid, int proxyPort)
    {
        var targets = Directory.GetFiles($"/proc/{pid}/fd").Select(f => { try { return new FileInfo(f).LinkTarget ?? ""; } catch (IOException) { return ""; } }).ToList();
        // /proc/PID/net/tcp: "sl local_address rem_address st ... inode": local port in hex, state 0A = LISTEN.
        var clientInodes = File.ReadLines($"/proc/{pid}/net/tcp").Skip(1)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => Convert.ToInt32(f[1].Split(':')[1], 16) == proxyPort && f[3] != "0A")
            .Select(f => $"socket:[{f[9]}]").ToHashSet(StringComparer.Ordinal);
        return new FdCounts(targets.Count, targets.Count(t => t.StartsWith("socket:", StringComparison.Ordinal)),
            targets.Count(t => t.StartsWith("pipe:", StringComparison.Ordinal)), targets.Count(clientInodes.Contains));
    }
}

/// <summary>
/// A fact that runs the proxy as an unprivileged user (setpriv) and traces it with strace: skipped, with the reason,
/// unless the tests run as root with setpriv and strace usable.
/// </summary>
public sealed class ServiceUserFactAttribute : FactAttribute
{
    /// <summary>
    /// An unprivileged uid of this test process's own rather than nobody's: the kernel's pipe quota is per user, so
    /// another test run at the same time (a second suite, another checkout's) running as nobody, above all while its
    /// quota hog holds the whole quota, would leave the proxy here 2-page pipes. A pid is unique among live processes,
    /// so is this uid; running as it needs no passwd entry (the group stays nogroup).
    /// </summary>
    public static readonly int Uid = 2_000_000_000 + Environment.ProcessId;

    public static readonly string[] Launcher = ["setpriv", $"--reuid={Uid}", "--regid=nogroup", "--clear-groups"];

    public ServiceUserFactAttribute()
    {
        if (Environment.UserName != "root") Skip = "needs root, to start the proxy as the unprivileged user nobody";
        else if (!File.Exists("/usr/bin/setpriv") && !File.Exists("/bin/setpriv")) Skip = "setpriv (util-linux) is not installed";
        else if (StraceAvailability.SkipReason is { } reason) Skip = reason;
    }
}
