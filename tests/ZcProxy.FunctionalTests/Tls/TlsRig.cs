using System.Security.Cryptography.X509Certificates;

namespace ZcProxy.Tests.Tls;

/// <summary>A config directory with one https listener (its JSON given by the test) in front of a test origin, and the proxy on it.</summary>
internal sealed class TlsRig : IAsyncDisposable
{
    private TlsRig(ConfigDirectory dir, TestOrigin origin, InProcessProxy proxy)
    {
        Dir = dir;
        Origin = origin;
        Proxy = proxy;
    }

    public ConfigDirectory Dir { get; }
    public TestOrigin Origin { get; }
    public InProcessProxy Proxy { get; }
    public int Port => new Uri(Proxy.Url).Port;
    public string HttpsUrl => Proxy.Url.Replace("http://", "https://", StringComparison.Ordinal);

    /// <summary>Writes the main file with <paramref name="listenJson"/> as the only Listen entry (after <paramref name="prepare"/>
    /// wrote the PEM files into the directory) and starts the proxy.</summary>
    public static async Task<TlsRig> StartAsync(string listenJson, Action<ConfigDirectory> prepare)
    {
        var origin = await TestOrigin.StartAsync("A");
        var dir = new ConfigDirectory();
        prepare(dir);
        WriteMain(dir, listenJson, origin.Url);
        return new TlsRig(dir, origin, await InProcessProxy.StartAsync(dir.MainFile));
    }

    public static void WriteMain(ConfigDirectory dir, string listenJson, string originUrl) => dir.WriteAtomically(dir.MainFile, $$"""
        { "Listen": [ {{listenJson}} ],
          "ReverseProxy": { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } },
                            "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", originUrl))}} } } }
        """);

    public string PathOf(string name) => Path.Combine(Dir.Root, name);

    public void Write(X509Certificate2 certificate, string certName, string keyName, params X509Certificate2[] chain)
        => TestCertificates.WritePem(certificate, PathOf(certName), PathOf(keyName), chain);

    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Origin.DisposeAsync();
        Dir.Dispose();
    }
}
