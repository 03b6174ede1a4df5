using System.Net.Sockets;
using System.Text;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Forwarding;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Forwarding;

/// <summary>The real proxy (InProcessProxy) routing everything to one upstream, plus readers of its counters.</summary>
internal sealed class ForwarderTestBed : IAsyncDisposable
{
    private readonly ConfigDirectory _dir;

    private ForwarderTestBed(ConfigDirectory dir, InProcessProxy proxy)
    {
        _dir = dir;
        Proxy = proxy;
    }

    public InProcessProxy Proxy { get; }
    public string Url => Proxy.Url;
    public ProxyMetrics Metrics => Proxy.Get<ProxyMetrics>();
    public ForwardingMetrics Forwarding => Proxy.Get<ForwardingMetrics>();

    /// <param name="clusterExtra">Extra JSON members of the cluster, e.g. "HttpRequest": {...}.</param>
    /// <param name="routeExtra">Extra JSON members of the route, e.g. "Transforms": [...].</param>
    /// <param name="accessLog">The access log's Path ("off", a file).</param>
    /// <param name="options">Extra top-level members, e.g. "DrainTimeout": "1s".</param>
    public static async Task<ForwarderTestBed> StartAsync(string upstreamUrl, string zeroCopy = "", string clusterExtra = "", string routeExtra = "", string path = "/{**rest}",
        string accessLog = "off", string options = "")
    {
        var dir = new ConfigDirectory();
        var cluster = clusterExtra.Length > 0 ? clusterExtra + "," : "";
        var route = routeExtra.Length > 0 ? routeExtra + "," : "";
        dir.WriteMain($$"""
            { "Routes": { "r": { {{route}} "ClusterId": "c", "Match": { "Path": "{{path}}" } } },
              "Clusters": { "c": { {{cluster}} "Destinations": { "d": { "Address": "{{upstreamUrl}}" } } } } }
            """, $$"""
            "AccessLog": { "Path": "{{accessLog}}" },{{(options.Length > 0 ? options + "," : "")}}
            "ZeroCopy": { "Enabled": true {{(zeroCopy.Length > 0 ? "," + zeroCopy : "")}} }
            """);
        try { return new ForwarderTestBed(dir, await InProcessProxy.StartAsync(dir.MainFile)); }
        catch { dir.Dispose(); throw; }
    }

    public long Copied => Metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Response);
    public long Spliced => Metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response);
    public long Errors(UpstreamErrorKind kind) => Forwarding.Error(kind).Value;

    /// <summary>A raw client connection to the proxy, for pipelining and exact wire checks.</summary>
    public async Task<(Socket Socket, RawReader Reader)> ConnectRawAsync()
    {
        var uri = new Uri(Url);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        return (socket, new RawReader(socket));
    }

    /// <summary>
    /// The proxy must end the client connection before the promised body is complete. Bounded: a proxy that
    /// neither finishes nor aborts fails the test instead of hanging the suite.
    /// </summary>
    public static async Task AssertAbortedAsync(RawReader reader)
    {
        var read = reader.ReadResponseAsync();
        var finished = await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.True(finished == read, "the proxy neither completed nor aborted the response within 30 s");
        await Assert.ThrowsAnyAsync<Exception>(() => read);
    }

    /// <summary>
    /// Body bytes at or above the splice threshold move by splice when ProxyHost wires the zero-copy transport
    /// (ZeroCopyTransport registered), else by copy; either way each byte is counted exactly once. A spliced body's first
    /// bytes may come with its head in the head's one read (at most HeadReadSize of them): those are counted as copied.
    /// </summary>
    public bool TransportWired => Proxy.Services.GetService(typeof(ZcProxy.Core.Transport.ZeroCopyTransport)) is not null;

    public async Task AssertBodyMechanismsAsync(long atOrAboveThreshold, long belowThreshold, int splicedBodies = 1)
    {
        // The proxy counts a body after its last write returns, which can be just after the client has read it.
        long total = atOrAboveThreshold + belowThreshold;
        await Poll.UntilAsync(() => Spliced + Copied >= total, $"{total} body bytes to be counted");
        Assert.Equal(total, Spliced + Copied);
        if (TransportWired)
        {
            long withTheHeads = (long)splicedBodies * ZcProxy.Core.Upstream.UpstreamConnection.HeadReadSize;
            Assert.InRange(Spliced, Math.Max(0, atOrAboveThreshold - withTheHeads), atOrAboveThreshold);
        }
        else Assert.Equal(0, Spliced);
    }

    public static Task SendAsync(Socket socket, string text) => socket.SendAsync(Encoding.Latin1.GetBytes(text).AsMemory()).AsTask();

    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        _dir.Dispose();
    }
}
