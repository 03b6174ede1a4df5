using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Xunit.Abstractions;
using ZcProxy.Core.Transport;
using ZcProxy.Tests.StreamProxy;

namespace ZcProxy.Tests.Proof;

/// <summary>
/// A stream relay of the real zcproxy process running as an unprivileged user whose pipe quota is nearly used up by
/// another process: the kernel still hands out pipes of its default 64 KiB but refuses to grow them to the relay pipe
/// size (F_SETPIPE_SZ: EPERM). The relay splices through the smaller pipes; nothing fails, every byte arrives.
/// </summary>
[Collection(StraceProofCollection.Name)]
public sealed class RelayPipeQuotaTests(ITestOutputHelper output)
{
    private const long Size = 16L << 20;
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    [ServiceUserFact]
    public async Task AsTheServiceUser_PipeSizeRefused_TheRelaySplicesThroughDefaultPipes_ByteExact()
    {
        if (!File.Exists("/usr/bin/python3")) return; // the quota hog below is a python3 one-liner
        await using var origin = StreamWire.ExchangeOrigin(Size);
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""{ "Clusters": { "c": { "Destinations": { "o": { "Address": "{{origin.Address}}" } } } } }""", """
            "AccessLog": { "Path": "off" },
            "Streams": { "s": { "Listen": "127.0.0.1:0", "ClusterId": "c" } }
            """);
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile], launcher: ServiceUserFactAttribute.Launcher);
        var (_, admin) = await proxy.WaitForListenersAsync();
        int streamPort = int.Parse((await proxy.WaitForLineAsync(@"stream 's' listening on 127\.0\.0\.1:(\d+)")).Groups[1].Value, CultureInfo.InvariantCulture);

        // Same user as the proxy, started after it: fills the quota to its soft limit (where new pipes would get 2 pages),
        // then gives back three default pipes: 48-63 pages of room. Each relay direction's pipe then gets its 16 pages,
        // and growing it to 64 (256 KiB) would pass the limit: refused.
        using var hog = ServiceUserPipeTests.QuotaHog.Start("""
            import fcntl, os, sys
            big, small = [], []
            def close(p): os.close(p[0]); os.close(p[1])
            while True:
                p = os.pipe(); big.append(p)
                try: fcntl.fcntl(p[1], 1031, 1 << 20)
                except OSError: break
            while True:
                while True:
                    p = os.pipe()
                    if fcntl.fcntl(p[1], 1032) < 65536: close(p); break
                    small.append(p)
                if len(small) >= 3: break
                close(big.pop())
            for _ in range(3): close(small.pop())
            print("quota used up but for 48-63 pages,", len(big), "+", len(small), "pipes held", flush=True)
            sys.stdin.read()
            """);
        output.WriteLine(await hog.ReadyAsync());

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, streamPort));
        using var strace = await StraceSession.AttachAsync(proxy.Pid, "splice");
        var (length, sha) = await StreamWire.ExchangeAsync(client, Size);
        await Poll.UntilAsync(() => !origin.Reports.IsEmpty, "the origin's report");
        var log = await strace.StopAsync();

        Assert.Equal((Size, BodyPattern.Sha256(Size)), (length, sha));
        Assert.Equal($"{Size} {BodyPattern.Sha256(Size)}", Assert.Single(origin.Reports));
        const string Refused = "relay pipes: the kernel refused to size a pipe to 262144 bytes";
        await Poll.UntilAsync(() => proxy.CountLines(Refused) > 0, "the refusal logged");
        string metrics = "";
        await Poll.UntilAsync(async () => Splice(metrics = await Http.GetStringAsync(admin + "/metrics"), "request") == Size && Splice(metrics, "response") == Size,
            "every byte counted as spliced, both ways");
        output.WriteLine(string.Join("\n", metrics.Split('\n').Where(l => l.Contains("relay_pipe") || l.Contains("body_bytes"))));
        Assert.Contains("zcproxy_relay_pipe_shortages_total 0\n", metrics);
        long largest = log.Calls.Where(c => c.Name == "splice" && c.Result > 0).Max(c => c.Result);
        output.WriteLine($"{log.CallsOf("splice")} splice calls, the largest moved {largest} bytes");
        Assert.InRange(largest, 1, PipeBudget.KernelDefaultPipeSize);
    }

    private static long Splice(string metrics, string direction)
    {
        var m = Regex.Match(metrics, $"^zcproxy_body_bytes_total\\{{mechanism=\"splice\",direction=\"{direction}\"\\}} (\\S+)$", RegexOptions.Multiline);
        return m.Success ? (long)double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }
}
