using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Xunit.Abstractions;
using ZcProxy.Core.Transport;
using ZcProxy.Tests.StreamProxy;

namespace ZcProxy.Tests.Proof;

/// <summary>
/// TCP stream mode checked from outside on the real zcproxy process: strace counts the bytes each system call moved
/// into the upstream socket and into the client socket while 256 MiB go each way at once.
/// </summary>
[Collection(StraceProofCollection.Name)]
public sealed class StreamStraceProofTests(ITestOutputHelper output)
{
    private const long Size = 256L << 20;
    private const string Syscalls = "splice,read,write,readv,writev,sendmsg,recvmsg,recvfrom,sendto";
    private static readonly HashSet<string> CopyingCalls = ["read", "write", "readv", "writev", "sendmsg", "recvmsg", "recvfrom", "sendto"];
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    [StraceFact]
    public async Task Stream_256MiBEachWay_IsSplicedBothWays_PerStraceAndCounters()
    {
        await using var origin = StreamWire.ExchangeOrigin(Size);
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""{ "Clusters": { "c": { "Destinations": { "o": { "Address": "{{origin.Address}}" } } } } }""", """
            "AccessLog": { "Path": "off" },
            "Streams": { "s": { "Listen": "127.0.0.1:0", "ClusterId": "c" } }
            """);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile]);
        var (_, admin) = await proxy.WaitForListenersAsync();
        int streamPort = int.Parse((await proxy.WaitForLineAsync(@"stream 's' listening on 127\.0\.0\.1:(\d+)")).Groups[1].Value, CultureInfo.InvariantCulture);
        int adminPort = new Uri(admin).Port;

        // strace first: the origin sends as soon as the proxy connects to it, and the proxy relays that into the client
        // socket's buffers (about 4 MiB) before the client reads; attached after the connect, strace could miss those calls.
        using var strace = await StraceSession.AttachAsync(proxy.Pid, Syscalls);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, streamPort));
        var (length, sha) = await StreamWire.ExchangeAsync(client, Size);
        await Poll.UntilAsync(() => !origin.Reports.IsEmpty, "the origin's report");
        long request = await BodyBytesReachingAsync(admin, "splice", "request", Size);
        long response = await BodyBytesReachingAsync(admin, "splice", "response", Size);
        var log = await strace.StopAsync();
        output.WriteLine($"strace -f -C -yy -e trace={Syscalls} -p {proxy.Pid} (256 MiB each way through stream 's'):");
        output.WriteLine(log.Summary);

        Assert.Equal(Size, length);
        Assert.Equal(BodyPattern.Sha256(Size), sha);
        Assert.Equal($"{Size} {BodyPattern.Sha256(Size)}", Assert.Single(origin.Reports));
        Assert.Equal(Size, request);
        Assert.Equal(Size, response);
        // splice(pipe, NULL, socket, ...) return values: what the kernel moved into each socket.
        long toUpstream = log.BytesOf(c => c.Name == "splice" && StraceLog.IsSocketWithRemotePort(c.Argument(2), origin.Port));
        long toClient = log.BytesOf(c => c.Name == "splice" && StraceLog.IsSocketWithLocalPort(c.Argument(2), streamPort));
        long userSpace = log.BytesOf(c => CopyingCalls.Contains(c.Name) && !StraceLog.IsSocketWithLocalPort(c.Argument(0), adminPort));
        output.WriteLine($"spliced into the upstream socket: {toUpstream} bytes; into the client socket: {toClient} bytes; read/write/sendmsg/recvfrom/...: {userSpace} bytes");
        Assert.Equal(Size, toUpstream);
        Assert.Equal(Size, toClient);
        Assert.True(userSpace < Size / 1024, $"{userSpace} bytes went through user space, expected well under 256 KiB");
        // Relays splice through pipes of their own pool (ZeroCopy.RelayPipeSize, 256 KiB), not the body pool's 1 MiB ones;
        // after 4 MiB a direction's pipe grows (ZeroCopy.RelayPipeGrowSize, 1 MiB), so the largest calls move more than 256 KiB.
        long largest = log.Calls.Where(c => c.Name == "splice" && c.Result > 0).Max(c => c.Result);
        output.WriteLine($"largest splice: {largest} bytes");
        Assert.InRange(largest, PipeBudget.DefaultRelayPipeSize + 1, PipeBudget.DefaultRelayPipeGrowSize);
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
