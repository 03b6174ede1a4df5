using System.Globalization;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Xunit.Abstractions;
using ZcProxy.Tests.Forwarding;

namespace ZcProxy.Tests.Proof;

/// <summary>
/// An upgraded connection checked from outside on the real zcproxy process: strace counts the bytes each system call
/// moved into the upstream socket and into the client socket while a WebSocket echo of 64 MiB runs through it.
/// </summary>
[Collection(StraceProofCollection.Name)]
public sealed class WebSocketStraceProofTests(ITestOutputHelper output)
{
    private const int Messages = 64;
    private const int MessageSize = 1 << 20;
    private const string Syscalls = "splice,read,write,readv,writev,sendmsg,recvmsg,recvfrom,sendto";
    private static readonly HashSet<string> CopyingCalls = ["read", "write", "readv", "writev", "sendmsg", "recvmsg", "recvfrom", "sendto"];
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    [StraceFact]
    public async Task WebSocketEcho_64MiB_IsSplicedBothWays_PerStraceAndCounters()
    {
        var reports = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var origin = await WebSocketTests.StartOriginAsync(reports);
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "ws": { "ClusterId": "o", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { {{ConfigDirectory.Cluster("o", ("o1", origin.Url))}} } }
            """, """
            "ZeroCopy": { "Enabled": true },
            "AccessLog": { "Path": "off" }
            """);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile]);
        var (proxyUrl, admin) = await proxy.WaitForListenersAsync();
        int proxyPort = new Uri(proxyUrl).Port, adminPort = new Uri(admin).Port, originPort = new Uri(origin.Url).Port;

        using var strace = await StraceSession.AttachAsync(proxy.Pid, Syscalls);
        using var client = new ClientWebSocket();
        client.Options.KeepAliveInterval = TimeSpan.Zero; // no pings: every byte is counted
        await client.ConnectAsync(new Uri($"ws://127.0.0.1:{proxyPort}/echo"), CancellationToken.None);
        var sending = Task.Run(async () =>
        {
            var message = new byte[MessageSize];
            for (int i = 0; i < Messages; i++)
            {
                BodyPattern.Fill(message, (long)i * MessageSize);
                await client.SendAsync(message, WebSocketMessageType.Binary, true, CancellationToken.None);
            }
        });
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var chunk = new byte[256 * 1024];
        long received = 0;
        for (int messages = 0; messages < Messages;)
        {
            var r = await client.ReceiveAsync(chunk.AsMemory(), CancellationToken.None);
            hash.AppendData(chunk, 0, r.Count);
            received += r.Count;
            if (r.EndOfMessage) messages++;
        }
        await sending;
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        await Poll.UntilAsync(() => !reports.IsEmpty, "the origin's report");

        const long Payload = (long)Messages * MessageSize;
        long requestWire = Messages * WebSocketTests.FrameBytes(MessageSize, masked: true) + WebSocketTests.FrameBytes(2 + 3, masked: true);
        long request = await BodyBytesReachingAsync(admin, "splice", "request", requestWire);
        long response = await BodyBytesReachingAsync(admin, "splice", "response", Payload);
        var log = await strace.StopAsync();
        output.WriteLine($"strace -f -C -yy -e trace={Syscalls} -p {proxy.Pid} (WebSocket echo, {Messages} x 1 MiB each way):");
        output.WriteLine(log.Summary);

        Assert.Equal((Payload, BodyPattern.Sha256(Payload)), (received, Convert.ToHexString(hash.GetHashAndReset())));
        Assert.Equal($"{Messages} {BodyPattern.Sha256(Payload)} 1000 bye", Assert.Single(reports));
        Assert.Equal(requestWire, request); // the client's frames, byte-exact (its close frame included)
        Assert.True(response >= Payload, $"{response} spliced to the client, expected at least the {Payload} echoed");
        Assert.Equal(0, await BodyBytesAsync(admin, "copy", "request") + await BodyBytesAsync(admin, "copy", "response"));
        // splice(pipe, NULL, socket, ...) return values: what the kernel moved into each socket after the 101.
        long toUpstream = log.BytesOf(c => c.Name == "splice" && StraceLog.IsSocketWithRemotePort(c.Argument(2), originPort));
        long toClient = log.BytesOf(c => c.Name == "splice" && StraceLog.IsSocketWithLocalPort(c.Argument(2), proxyPort));
        long userSpace = log.BytesOf(c => CopyingCalls.Contains(c.Name) && !StraceLog.IsSocketWithLocalPort(c.Argument(0), adminPort));
        output.WriteLine($"spliced into the upstream socket: {toUpstream} bytes; into the client socket: {toClient} bytes; read/write/sendmsg/recvfrom/... (heads): {userSpace} bytes");
        Assert.Equal(request, toUpstream);
        Assert.Equal(response, toClient);
        Assert.True(userSpace < 64 * 1024, $"{userSpace} bytes went through user space, expected only the request and 101 heads");
    }

    private static async Task<long> BodyBytesAsync(string admin, string mechanism, string direction)
    {
        var text = await Http.GetStringAsync(admin + "/metrics");
        var m = Regex.Match(text, $"^zcproxy_body_bytes_total\\{{mechanism=\"{mechanism}\",direction=\"{direction}\"\\}} (\\S+)$", RegexOptions.Multiline);
        return m.Success ? (long)double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    /// <summary>Counters land right after each syscall: wait (bounded) until the count reaches <paramref name="expected"/>, then return it for an exact assert.</summary>
    private static async Task<long> BodyBytesReachingAsync(string admin, string mechanism, string direction, long expected)
    {
        long value = 0;
        try { await Poll.UntilAsync(async () => (value = await BodyBytesAsync(admin, mechanism, direction)) >= expected, $"{mechanism} {direction} bytes reach {expected}", TimeSpan.FromSeconds(10)); }
        catch (TimeoutException) { }
        return value;
    }
}
