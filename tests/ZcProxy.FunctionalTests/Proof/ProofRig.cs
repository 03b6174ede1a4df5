using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Tests.Forwarding;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Proof;

/// <summary>
/// The real zcproxy process (zcproxy.dll, generated config, admin listener, no access log) in front of a Kestrel
/// origin in the test process, shared by the strace proofs: /plain/* is forwarded without cache (splice),
/// /cached/* is cache-enabled with DirectIoThreshold 1 MiB, /static/* serves files from <see cref="StaticRoot"/>. Bodies are BodyPattern bytes with Content-Length.
/// </summary>
public sealed class ProofRig : IAsyncLifetime
{
    public const long HugeBody = 256L << 20;
    public const int SmallBody = 100_000;
    public const int MediumBody = 64 * 1024;
    public const int CachedSmall = 200_000;
    public const int CachedTiny = 1024;
    public const int CachedLarge = 3 << 20;
    public const int StaticFile = 1 << 20;

    private static readonly HttpClient Client = new(new SocketsHttpHandler { UseCookies = false, PooledConnectionLifetime = TimeSpan.FromSeconds(1) })
    { Timeout = TimeSpan.FromSeconds(60) };

    private TestOrigin? _origin;
    private ConfigDirectory? _dir;
    private ProxyProcess? _proxy;

    public ProxyProcess Proxy => _proxy!;
    public Uri ProxyUrl { get; private set; } = null!;
    public string AdminUrl { get; private set; } = "";
    public int OriginPort => _origin!.Port;
    public string CachePath => Path.Combine(_dir!.Root, "cache");
    public string StaticRoot => Path.Combine(_dir!.Root, "www");

    public async Task InitializeAsync()
    {
        _origin = await TestOrigin.StartAsync("origin", app =>
        {
            app.MapGet("/plain/huge", (HttpContext c) => WriteBodyAsync(c, HugeBody, cacheable: false));
            app.MapGet("/plain/small", (HttpContext c) => WriteBodyAsync(c, SmallBody, cacheable: false));
            // Answers after a pause: the proxy's first look at the upstream socket after sending the request finds nothing.
            app.MapGet("/plain/medium", async (HttpContext c) =>
            {
                await Task.Delay(20, c.RequestAborted);
                await WriteBodyAsync(c, MediumBody, cacheable: false);
            });
            app.MapGet("/cached/small", (HttpContext c) => WriteBodyAsync(c, CachedSmall, cacheable: true));
            app.MapGet("/cached/tiny", (HttpContext c) => WriteBodyAsync(c, CachedTiny, cacheable: true));
            app.MapGet("/cached/large", (HttpContext c) => WriteBodyAsync(c, CachedLarge, cacheable: true));
            app.MapGet("/cached/huge", (HttpContext c) => WriteBodyAsync(c, HugeBody, cacheable: true));
        });
        _dir = new ConfigDirectory();
        Directory.CreateDirectory(Path.Combine(StaticRoot, "static"));
        using (var file = File.Create(Path.Combine(StaticRoot, "static", "file.bin")))
            foreach (var piece in BodyPattern.Pieces(StaticFile)) file.Write(piece.Span);
        // OpenFiles 0: the cold-hit proof replaces an entry file behind the proxy's back (MakeColdAsync), which a hit sees
        // only when it opens the entry by path.
        _dir.WriteMain($$"""
            {
              "Routes": {
                "plain": { "ClusterId": "o", "Match": { "Path": "/plain/{**rest}" } },
                "cached": { "ClusterId": "o", "Match": { "Path": "/cached/{**rest}" }, "Metadata": { "Cache": "on" } },
                "static": { "Match": { "Path": "/static/{**rest}" }, "Metadata": { "Static": "{{StaticRoot}}" } }
              },
              "Clusters": { {{ConfigDirectory.Cluster("o", ("o1", _origin.Url))}} }
            }
            """, $$"""
            "ZeroCopy": { "Enabled": true },
            "Cache": { "Path": "{{CachePath}}", "DirectIoThreshold": "1MiB", "MaxSize": "1GiB", "MinFreeDisk": 0, "OpenFiles": 0 },
            "AccessLog": { "Path": "off" }
            """);
        _proxy = ProxyProcess.Start(["--config", _dir.MainFile]);
        var (proxy, admin) = await _proxy.WaitForListenersAsync();
        ProxyUrl = new Uri(proxy);
        AdminUrl = admin;
    }

    private static async Task WriteBodyAsync(HttpContext context, long length, bool cacheable)
    {
        if (cacheable) context.Response.Headers.CacheControl = "max-age=600";
        context.Response.ContentType = "application/octet-stream";
        context.Response.ContentLength = length;
        foreach (var piece in BodyPattern.Pieces(length)) await context.Response.Body.WriteAsync(piece, context.RequestAborted);
    }

    public Task<long> BodyBytesAsync(string mechanism) => MetricAsync($"zcproxy_body_bytes_total{{mechanism=\"{mechanism}\",direction=\"response\"}}");

    /// <summary>zcproxy_cache_fill_bytes_total{mechanism}: how body bytes reached cache entry files.</summary>
    public Task<long> FillBytesAsync(string mechanism) => MetricAsync($"zcproxy_cache_fill_bytes_total{{mechanism=\"{mechanism}\"}}");

    private async Task<long> MetricAsync(string series)
    {
        var text = await Client.GetStringAsync(AdminUrl + "/metrics");
        var m = Regex.Match(text, $"^{Regex.Escape(series)} (\\S+)$", RegexOptions.Multiline);
        return m.Success ? (long)double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    /// <summary>
    /// Counters are added right after each syscall returns, so the client may hold the last byte an instant before
    /// the count lands: wait (bounded) until it reaches <paramref name="expected"/>, then return it for an exact assert.
    /// </summary>
    public Task<long> BodyBytesReachingAsync(string mechanism, long expected) => BodyBytesReachingAsync([mechanism], expected);

    /// <summary>The same for the sum of several mechanisms' counters (a body spliced but for what came with its head).</summary>
    public async Task<long> BodyBytesReachingAsync(string[] mechanisms, long expected)
    {
        async Task<long> SumAsync()
        {
            long sum = 0;
            foreach (var mechanism in mechanisms) sum += await BodyBytesAsync(mechanism);
            return sum;
        }
        long value = 0;
        try { await Poll.UntilAsync(async () => (value = await SumAsync()) >= expected, $"{string.Join("+", mechanisms)} bytes reach {expected}", TimeSpan.FromSeconds(10)); }
        catch (TimeoutException) { }
        return value;
    }

    public async Task DisposeAsync()
    {
        _proxy?.Dispose();
        if (_origin is not null) await _origin.DisposeAsync();
        _dir?.Dispose();
    }
}
