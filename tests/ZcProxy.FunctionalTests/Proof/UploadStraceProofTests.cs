using System.Globalization;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.RegularExpressions;
using Xunit.Abstractions;
using ZcProxy.Core.Transport;
using ZcProxy.Tests.Forwarding;

namespace ZcProxy.Tests.Proof;

/// <summary>
/// Spliced uploads checked from outside on the real zcproxy process: strace counts the bytes each system call moved
/// into the upstream socket while a 256 MiB request body goes through, and the proxy's fd count returns to its
/// baseline after tunnels and uploads (no pipe or socket left behind).
/// </summary>
[Collection(StraceProofCollection.Name)]
public sealed class UploadStraceProofTests(ITestOutputHelper output)
{
    private const long Huge = 256L << 20;
    private const string Syscalls = "splice,read,write,readv,writev,sendmsg,recvmsg,recvfrom,sendto";
    private static readonly HashSet<string> CopyingCalls = ["read", "write", "readv", "writev", "sendmsg", "recvmsg", "recvfrom", "sendto"];
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    private static ProxyProcess StartProxy(ConfigDirectory dir, string originUrl, string zeroCopyExtra = "")
    {
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "o", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { {{ConfigDirectory.Cluster("o", ("o1", originUrl))}} } }
            """, $$"""
            "ZeroCopy": { "Enabled": true {{zeroCopyExtra}} },
            "Limits": { "MaxRequestBodySize": "1GiB" },
            "AccessLog": { "Path": "off" }
            """);
        return ProxyProcess.Start(["--config", dir.MainFile]);
    }

    private static async Task<(Socket Socket, RawReader Reader)> ConnectAsync(string proxyUrl)
    {
        var uri = new Uri(proxyUrl);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        return (socket, new RawReader(socket));
    }

    [StraceFact]
    public async Task Upload_256MiB_IsSplicedIntoTheUpstreamSocket_PerStraceAndCounters()
    {
        await using var origin = await UploadSpliceTests.StartOriginAsync();
        using var dir = new ConfigDirectory();
        using var proxy = StartProxy(dir, origin.Url);
        var (proxyUrl, admin) = await proxy.WaitForListenersAsync();
        int adminPort = new Uri(admin).Port, originPort = new Uri(origin.Url).Port;

        var (socket, reader) = await ConnectAsync(proxyUrl);
        using (socket)
        {
            using var strace = await StraceSession.AttachAsync(proxy.Pid, Syscalls);
            var sending = UploadSpliceTests.SendUploadAsync(socket, Huge);
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromMinutes(3));
            await sending;
            long spliced = await BodyBytesReachingAsync(admin, "splice", Huge - ZeroCopyTransport.BlockSize);
            long copied = await BodyBytesAsync(admin, "copy");
            var log = await strace.StopAsync();
            output.WriteLine($"strace -f -C -yy -e trace={Syscalls} -p {proxy.Pid} (a {Huge}-byte upload):");
            output.WriteLine(log.Summary);

            Assert.Equal(200, response.Status);
            Assert.Equal($"{Huge} {Infrastructure.BodyPattern.Sha256(Huge)}", Encoding.ASCII.GetString(response.Body));
            Assert.Equal(Huge, spliced + copied); // the counters equal the body length
            Assert.InRange(copied, 0, ZeroCopyTransport.BlockSize); // only what came with the request head
            // splice(pipe, NULL, upstream socket, ...) return values: what the kernel moved into the upstream socket.
            long toUpstream = log.BytesOf(c => c.Name == "splice" && StraceLog.IsSocketWithRemotePort(c.Argument(2), originPort));
            long userSpace = log.BytesOf(c => CopyingCalls.Contains(c.Name) && !StraceLog.IsSocketWithLocalPort(c.Argument(0), adminPort));
            output.WriteLine($"spliced into the upstream socket: {toUpstream} bytes; through user space (heads, the body's first bytes): {userSpace} bytes");
            Assert.Equal(spliced, toUpstream);
            Assert.True(userSpace < 2 * ZeroCopyTransport.BlockSize + 8 * 1024, $"{userSpace} bytes went through user space");

            // Keep-alive after the upload.
            await socket.SendAsync("GET /after HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray().AsMemory());
            var after = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal("o GET /after", Encoding.ASCII.GetString(after.Body));
        }
    }

    /// <summary>
    /// Tunnels (WebSocket echoes) and uploads (spliced, stopped by the client, early-answered) one after another: once
    /// they ended, the proxy holds exactly the fds it held before them. Upstream keep-alive is off (no idle upstream
    /// sockets), and the warm-up ran a tunnel, so the pool's idle pipes (at most two at once here) are in the baseline.
    /// </summary>
    [Fact]
    public async Task AfterTunnelsAndSplicedUploads_TheProxysFdCountReturnsToItsBaseline()
    {
        var reports = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var wsOrigin = await WebSocketTests.StartOriginAsync(reports);
        await using var origin = await UploadSpliceTests.StartOriginAsync();
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "ws": { "ClusterId": "w", "Match": { "Path": "/echo" } }, "r": { "ClusterId": "o", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { {{ConfigDirectory.Cluster("w", ("w1", wsOrigin.Url))}}, {{ConfigDirectory.Cluster("o", ("o1", origin.Url))}} } }
            """, """
            "ZeroCopy": { "Enabled": true, "MaxIdleConnectionsPerDestination": 0 },
            "AccessLog": { "Path": "off" }
            """);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile]);
        var (proxyUrl, _) = await proxy.WaitForListenersAsync();

        await TunnelAsync(proxyUrl);
        await UploadAsync(proxyUrl, 4 << 20);
        int baseline = await SettledFdCountAsync(proxy.Pid);

        for (int i = 0; i < 3; i++)
        {
            await TunnelAsync(proxyUrl);
            await UploadAsync(proxyUrl, (4 << 20) + i);
            await AbandonedUploadAsync(proxyUrl);
        }

        try { await Poll.UntilAsync(() => CountFds(proxy.Pid) <= baseline, $"fd count back to its baseline {baseline}", TimeSpan.FromSeconds(20)); }
        catch (TimeoutException e) { throw new TimeoutException($"{e.Message}: still {CountFds(proxy.Pid)} fds", e); }
        output.WriteLine($"fds: baseline {baseline}, after 3 tunnels, 3 uploads, 3 abandoned uploads: {CountFds(proxy.Pid)}");
    }

    [StraceFact]
    public async Task Upload_IntoASlowerUpstream_NoSpliceIntoItThatCouldOnlyFindItFull()
    {
        // The test origin hashes what it reads: slower than splicing, so the upstream socket fills again and again.
        const long length = 128L << 20;
        await using var origin = await UploadSpliceTests.StartOriginAsync();
        using var dir = new ConfigDirectory();
        using var proxy = StartProxy(dir, origin.Url);
        var (proxyUrl, _) = await proxy.WaitForListenersAsync();
        int originPort = new Uri(origin.Url).Port;

        var (socket, reader) = await ConnectAsync(proxyUrl);
        using (socket)
        {
            // Per thread, in order: a splice into the upstream socket after one that found it full (EAGAIN, or fewer bytes
            // than offered) with no epoll_wait between could only fail, unless an edge of the last epoll_wait's batch was
            // applied after that splice (a wait completed inline by an earlier event of the batch): rare, so at most a tenth.
            // How often the upstream fills depends on how fast the origin hashes against the machine's load: uploads go on
            // (over the same connection, at most MaxUploads) until it was found full MinFull times, so that a tenth means
            // something (once 2 of 3 failed the bound on a loaded machine).
            const int MinFull = 30, MaxUploads = 4;
            int full = 0, blind = 0;
            for (int upload = 0; upload < MaxUploads && full < MinFull; upload++)
            {
                using var strace = await StraceSession.AttachAsync(proxy.Pid, "splice,epoll_wait");
                var sending = UploadSpliceTests.SendUploadAsync(socket, length);
                var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromMinutes(3));
                await sending;
                var log = await strace.StopAsync();
                Assert.Equal(200, response.Status);
                foreach (var thread in log.Calls.GroupBy(c => c.Pid))
                {
                    bool knownFull = false;
                    foreach (var call in thread)
                    {
                        if (call.Name == "epoll_wait")
                        {
                            knownFull = false;
                            continue;
                        }
                        if (call.Name != "splice" || !StraceLog.IsSocketWithRemotePort(call.Argument(2), originPort)) continue;
                        if (knownFull) blind++;
                        knownFull = call.Result < long.Parse(call.Argument(4), CultureInfo.InvariantCulture);
                        if (knownFull) full++;
                    }
                }
                output.WriteLine($"after upload {upload + 1}: splices into the upstream that found it full: {full}; made again before any epoll_wait: {blind}");
            }
            Assert.True(full > 0, "the upstream socket never filled: nothing was tested");
            Assert.True(blind * 10 <= full, $"{blind} of {full} splices into a full upstream were made again before any epoll_wait");
        }
    }

    /// <summary>
    /// A spliced upload whose first bytes came with its head: the request head goes upstream with MSG_MORE, so it leaves
    /// in one segment with those bytes (as HAProxy sends them), not in a small segment of its own that wakes the upstream
    /// for the head alone. Checked on two uploads over one kept-alive connection.
    /// </summary>
    [StraceFact]
    public async Task Upload_TheRequestHeadLeavesWithTheBodysFirstBytes()
    {
        const long length = 4L << 20;
        await using var origin = await UploadSpliceTests.StartOriginAsync();
        using var dir = new ConfigDirectory();
        using var proxy = StartProxy(dir, origin.Url);
        var (proxyUrl, _) = await proxy.WaitForListenersAsync();
        int originPort = new Uri(origin.Url).Port;

        var (socket, reader) = await ConnectAsync(proxyUrl);
        using (socket)
        {
            using var strace = await StraceSession.AttachAsync(proxy.Pid, "sendto,sendmsg,splice");
            for (int upload = 0; upload < 2; upload++)
            {
                // The head and the body's first piece in one send: the proxy's recv of the head takes body bytes along.
                var pieces = Infrastructure.BodyPattern.Pieces(length).ToList();
                byte[] first = [.. Encoding.ASCII.GetBytes($"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"), .. pieces[0].Span];
                var sending = Task.Run(async () =>
                {
                    await socket.SendAsync(first.AsMemory());
                    foreach (var piece in pieces.Skip(1)) await socket.SendAsync(piece);
                });
                var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromMinutes(1));
                await sending;
                Assert.Equal($"{length} {Infrastructure.BodyPattern.Sha256(length)}", Encoding.ASCII.GetString(response.Body));
            }
            var log = await strace.StopAsync();

            var toUpstream = log.Calls.Where(c => c.Name != "splice" && StraceLog.IsSocketWithRemotePort(c.Argument(0), originPort)).ToList();
            var heads = toUpstream.Where(c => c.Arguments.Contains("\"POST /upload", StringComparison.Ordinal)).ToList();
            foreach (var call in toUpstream) output.WriteLine($"{call.Name} -> upstream: {call.Result} bytes{(call.Arguments.Contains("MSG_MORE", StringComparison.Ordinal) ? ", MSG_MORE" : "")}");
            Assert.Equal(2, heads.Count);
            Assert.All(heads, head => Assert.Contains("MSG_MORE", head.Arguments, StringComparison.Ordinal));
            // Only the heads wait for more: the body's first bytes (sent next) push them out.
            Assert.Equal(2, toUpstream.Count(c => c.Arguments.Contains("MSG_MORE", StringComparison.Ordinal)));
        }
    }

    private static async Task TunnelAsync(string proxyUrl)
    {
        using var client = new ClientWebSocket();
        await client.ConnectAsync(new Uri($"ws://{new Uri(proxyUrl).Authority}/echo"), CancellationToken.None);
        var message = new byte[300_000]; // more than a pipe's worth either way is not needed: both directions lease a pipe
        Infrastructure.BodyPattern.Fill(message, 0);
        await client.SendAsync(message, WebSocketMessageType.Binary, true, CancellationToken.None);
        var buffer = new byte[64 * 1024];
        for (long received = 0; received < message.Length;)
            received += (await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None)).Count;
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
    }

    private static async Task UploadAsync(string proxyUrl, long length)
    {
        var (socket, reader) = await ConnectAsync(proxyUrl);
        using (socket)
        {
            var sending = UploadSpliceTests.SendUploadAsync(socket, length);
            var response = await reader.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(30));
            await sending;
            Assert.Equal($"{length} {Infrastructure.BodyPattern.Sha256(length)}", Encoding.ASCII.GetString(response.Body));
        }
    }

    /// <summary>A client that sends part of a spliced body and goes away.</summary>
    private static async Task AbandonedUploadAsync(string proxyUrl)
    {
        var (socket, _) = await ConnectAsync(proxyUrl);
        using (socket)
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes($"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {8 << 20}\r\n\r\n").AsMemory());
            foreach (var piece in Infrastructure.BodyPattern.Pieces(1 << 20)) await socket.SendAsync(piece);
            socket.LingerState = new LingerOption(true, 0); // a reset
        }
    }

    /// <summary>The fd count once it stopped changing (the runtime opens a few lazily after the first requests).</summary>
    private static async Task<int> SettledFdCountAsync(int pid)
    {
        int last = CountFds(pid), stable = 0;
        await Poll.UntilAsync(async () =>
        {
            await Task.Delay(100);
            int now = CountFds(pid);
            stable = now == last ? stable + 1 : 0;
            last = now;
            return stable >= 5;
        }, "the fd count settles", TimeSpan.FromSeconds(20));
        return last;
    }

    private static int CountFds(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Length;

    private static async Task<long> BodyBytesAsync(string admin, string mechanism)
    {
        var text = await Http.GetStringAsync(admin + "/metrics");
        var m = Regex.Match(text, $"^zcproxy_body_bytes_total\\{{mechanism=\"{mechanism}\",direction=\"request\"\\}} (\\S+)$", RegexOptions.Multiline);
        return m.Success ? (long)double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    private static async Task<long> BodyBytesReachingAsync(string admin, string mechanism, long atLeast)
    {
        long value = 0;
        try { await Poll.UntilAsync(async () => (value = await BodyBytesAsync(admin, mechanism)) >= atLeast, $"{mechanism} request bytes reach {atLeast}", TimeSpan.FromSeconds(10)); }
        catch (TimeoutException) { }
        return value;
    }
}
