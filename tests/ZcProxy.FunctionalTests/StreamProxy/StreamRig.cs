using System.Net;
using System.Net.Sockets;
using Yarp.ReverseProxy;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.StreamProxy;

namespace ZcProxy.Tests.StreamProxy;

/// <summary>
/// The real proxy in this process (ProxyHost, as the executable builds it) with a <c>Streams</c> section, its config
/// directory (rewritten for reloads), and what the stream tests read: each stream's bound address and the metrics.
/// </summary>
public sealed class StreamRig : IAsyncDisposable
{
    private StreamRig(ConfigDirectory dir, InProcessProxy proxy)
    {
        Directory = dir;
        Proxy = proxy;
    }

    public ConfigDirectory Directory { get; }
    public InProcessProxy Proxy { get; }
    public string AccessLogPath => Path.Combine(Directory.Root, "access.log");
    internal StreamProxyService Streams => Proxy.Get<StreamProxyService>();
    internal ProxyMetrics Metrics => Proxy.Get<ProxyMetrics>();
    public IProxyStateLookup State => Proxy.Get<IProxyStateLookup>();

    /// <param name="streams">The Streams object's members, e.g. <c>"s": { "Listen": "127.0.0.1:0", "ClusterId": "c" }</c>.</param>
    /// <param name="clusters">ReverseProxy.Clusters members.</param>
    public static async Task<StreamRig> StartAsync(string streams, string clusters)
    {
        var dir = new ConfigDirectory();
        try
        {
            Write(dir, streams, clusters);
            return new StreamRig(dir, await InProcessProxy.StartAsync(dir.MainFile));
        }
        catch
        {
            dir.Dispose();
            throw;
        }
    }

    /// <summary>Rewrites the main file (a reload) and waits until it was applied.</summary>
    public async Task ReloadAsync(string streams, string clusters)
    {
        var lifecycle = Proxy.Get<ZcProxy.Core.Configuration.ConfigLifecycle>();
        var before = lifecycle.Last;
        Write(Directory, streams, clusters);
        await Poll.UntilAsync(() => lifecycle.Last is { Applied: true } last && !ReferenceEquals(last, before), "the edited config to be applied");
    }

    private static void Write(ConfigDirectory dir, string streams, string clusters)
        => dir.WriteMain($$"""{ "Clusters": { {{clusters}} } }""", $$"""
            "AccessLog": { "Path": "{{Path.Combine(dir.Root, "access.log")}}" },
            "Streams": { {{streams}} }
            """);

    public static string Cluster(string id, params string[] addresses) => ClusterWith(id, "", addresses);

    /// <param name="extra">More members of the cluster object (policy, metadata, health check), with a trailing comma.</param>
    public static string ClusterWith(string id, string extra, params string[] addresses)
        => $$""" "{{id}}": { {{extra}} "Destinations": { {{string.Join(", ", addresses.Select((a, i) => $"\"d{i}\": {{ \"Address\": \"{a}\" }}"))}} } } """;

    public IPEndPoint EndPointOf(string stream) => Streams.EndPointOf(stream) ?? throw new InvalidOperationException($"stream '{stream}' is not listening");

    public async Task<Socket> ConnectAsync(string stream)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(EndPointOf(stream));
        return socket;
    }

    public long Counter(string name, params (string, string)[] labels) => Metrics.CounterValue(name, labels);

    public long Closed(string stream, string reason) => Counter("zcproxy_stream_closed_total", ("stream", stream), ("reason", reason));

    internal long BodyBytes(BodyMechanism mechanism, BodyDirection direction) => Metrics.GetBodyBytes(mechanism, direction);

    /// <summary>Access-log lines written so far (the writer batches: poll for the one expected).</summary>
    public string[] AccessLogLines()
    {
        if (!File.Exists(AccessLogPath)) return [];
        using var file = new FileStream(AccessLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(file);
        return reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        Directory.Dispose();
    }
}
