using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>An origin that counts requests, a proxy with a cache-enabled route to it, and a client that keeps no cookies.</summary>
public sealed class CacheRig : IAsyncDisposable
{
    public static readonly HttpClient Client = new(new SocketsHttpHandler
    {
        UseCookies = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = System.Net.DecompressionMethods.None,
        PooledConnectionLifetime = TimeSpan.FromSeconds(1),
    }) { Timeout = TimeSpan.FromSeconds(60) };

    private CacheRig(TestOrigin origin, ConfigDirectory dir, InProcessProxy proxy)
    {
        Origin = origin;
        Dir = dir;
        Proxy = proxy;
    }

    public TestOrigin Origin { get; }
    public ConfigDirectory Dir { get; }
    public InProcessProxy Proxy { get; private set; }
    public string CachePath => Path.Combine(Dir.Root, "cache");

    /// <param name="zeroCopy">ZeroCopy.Enabled: true forwards misses with ZcProxy's forwarder, false with YARP's.</param>
    /// <param name="routeMetadata">Extra Metadata of the cached route, as JSON members (<c>"CacheIgnoreHeaders": "Set-Cookie"</c>).</param>
    /// <param name="replaceServices">Swaps proxy services for fakes (<see cref="InProcessProxy.StartAsync"/>).</param>
    public static async Task<CacheRig> StartAsync(Action<WebApplication> endpoints, string cacheSettings = "", string? cachePath = null, ConfigDirectory? dir = null,
        bool zeroCopy = true, string routeMetadata = "", Action<IServiceCollection>? replaceServices = null)
    {
        var origin = await TestOrigin.StartAsync("origin", endpoints);
        dir ??= new ConfigDirectory();
        var path = cachePath ?? Path.Combine(dir.Root, "cache");
        dir.WriteMain($$"""
            {
              "Routes": {
                "cached": { "ClusterId": "o", "Match": { "Path": "/{**rest}" }, "Metadata": { "Cache": "on" {{(routeMetadata.Length > 0 ? "," + routeMetadata : "")}} } },
                "plain": { "ClusterId": "o", "Match": { "Path": "/nocache/{**rest}" } }
              },
              "Clusters": { {{ConfigDirectory.Cluster("o", ("o1", origin.Url))}} }
            }
            """, $$"""
            "Cache": { "Path": "{{path}}", "DirectIoThreshold": "1MiB", "MaxSize": "1GiB" {{(cacheSettings.Length > 0 ? "," + cacheSettings : "")}} },
            "AccessLog": { "Path": "off" },
            "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }
            """);
        var proxy = await InProcessProxy.StartAsync(dir.MainFile, replaceServices);
        return new CacheRig(origin, dir, proxy);
    }

    public async Task<HttpResponseMessage> SendAsync(string path, Action<HttpRequestMessage>? configure = null, HttpMethod? method = null)
    {
        var request = new HttpRequestMessage(method ?? HttpMethod.Get, Proxy.Url + path);
        configure?.Invoke(request);
        var response = await Client.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    public async Task<(string Status, string Body)> GetAsync(string path, Action<HttpRequestMessage>? configure = null)
    {
        var response = await SendAsync(path, configure);
        return (CacheStatusOf(response), await response.Content.ReadAsStringAsync());
    }

    public static string CacheStatusOf(HttpResponseMessage response)
        => response.Headers.TryGetValues("X-Cache-Status", out var v) ? string.Join(",", v) : "-";

    public async Task<double> MetricAsync(string nameWithLabels)
    {
        var text = await Client.GetStringAsync(Proxy.AdminUrl + "/metrics");
        var m = Regex.Match(text, "^" + Regex.Escape(nameWithLabels) + @" (\S+)$", RegexOptions.Multiline);
        return m.Success ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    public IEnumerable<string> EntryFiles() => Directory.Exists(CachePath)
        ? Directory.EnumerateFiles(CachePath, "*", SearchOption.AllDirectories) : [];

    public static string Sha256(byte[] data) => Convert.ToHexString(SHA256.HashData(data));

    public static byte[] RandomBody(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>Stops the proxy, lets the test change the cache directory, and starts a new proxy on the same config.</summary>
    public async Task RestartProxyAsync(Action? whileStopped = null)
    {
        await Proxy.DisposeAsync();
        whileStopped?.Invoke();
        Proxy = await InProcessProxy.StartAsync(Dir.MainFile);
    }

    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Origin.DisposeAsync();
        Dir.Dispose();
    }
}
