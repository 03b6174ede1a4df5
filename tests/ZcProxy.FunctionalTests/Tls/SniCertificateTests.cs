using System.Net;

namespace ZcProxy.Tests.Tls;

public class SniCertificateTests
{
    [Fact]
    public async Task Sni_PicksExactWildcardOwnNamesOrDefault()
    {
        using var fallback = TestCertificates.SelfSigned("default.example");
        using var a = TestCertificates.SelfSigned("a.example");
        using var wild = TestCertificates.SelfSigned("*.w.example");
        using var own = TestCertificates.SelfSigned("b.example", "*.b.example");
        await using var rig = await TlsRig.StartAsync("""
            { "Url": "https://127.0.0.1:0", "Certificate": "default.pem", "CertificateKey": "default.key",
              "Certificates": [
                { "Certificate": "a.pem", "CertificateKey": "a.key", "Hosts": [ "a.example", "A2.example." ] },
                { "Certificate": "w.pem", "CertificateKey": "w.key", "Hosts": [ "*.w.example" ] },
                { "Certificate": "b.pem", "CertificateKey": "b.key" } ] }
            """, dir =>
        {
            TestCertificates.WritePem(fallback, Path.Combine(dir.Root, "default.pem"), Path.Combine(dir.Root, "default.key"));
            TestCertificates.WritePem(a, Path.Combine(dir.Root, "a.pem"), Path.Combine(dir.Root, "a.key"));
            TestCertificates.WritePem(wild, Path.Combine(dir.Root, "w.pem"), Path.Combine(dir.Root, "w.key"));
            TestCertificates.WritePem(own, Path.Combine(dir.Root, "b.pem"), Path.Combine(dir.Root, "b.key"));
        });

        async Task<string> Served(string serverName) => (await TlsProbe.HandshakeAsync(rig.Port, serverName)).Thumbprint;

        Assert.Equal(a.Thumbprint, await Served("a.example"));
        Assert.Equal(a.Thumbprint, await Served("A.EXAMPLE"));
        Assert.Equal(a.Thumbprint, await Served("a2.example"));
        Assert.Equal(wild.Thumbprint, await Served("www.w.example"));
        Assert.Equal(fallback.Thumbprint, await Served("w.example"));       // a wildcard covers one label, not its parent
        Assert.Equal(fallback.Thumbprint, await Served("x.www.w.example")); // nor two labels
        Assert.Equal(own.Thumbprint, await Served("b.example"));            // no Hosts: the certificate's own names
        Assert.Equal(own.Thumbprint, await Served("shop.b.example"));
        Assert.Equal(fallback.Thumbprint, await Served("other.example"));
        Assert.Equal(fallback.Thumbprint, await Served("127.0.0.1"));       // an IP address sends no SNI
    }

    [Fact]
    public async Task CertificatesOnly_FirstIsTheDefault_AndRequestsAreProxied()
    {
        using var a = TestCertificates.SelfSigned("a.example");
        using var b = TestCertificates.SelfSigned("b.example");
        await using var rig = await TlsRig.StartAsync("""
            { "Url": "https://127.0.0.1:0", "Certificates": [
                { "Certificate": "a.pem", "CertificateKey": "a.key", "Hosts": [ "a.example" ] },
                { "Certificate": "b.pem", "CertificateKey": "b.key", "Hosts": [ "b.example" ] } ] }
            """, dir =>
        {
            TestCertificates.WritePem(a, Path.Combine(dir.Root, "a.pem"), Path.Combine(dir.Root, "a.key"));
            TestCertificates.WritePem(b, Path.Combine(dir.Root, "b.pem"), Path.Combine(dir.Root, "b.key"));
        });

        Assert.Equal(a.Thumbprint, (await TlsProbe.HandshakeAsync(rig.Port, "unknown.example")).Thumbprint);
        string? seen = null;
        using var client = new HttpClient(new SocketsHttpHandler
        {
            // Connect to 127.0.0.1 but name b.example in SNI and Host, as a browser resolving b.example would.
            ConnectCallback = async (_, token) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                await socket.ConnectAsync(IPAddress.Loopback, rig.Port, token);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
            SslOptions = { RemoteCertificateValidationCallback = (_, c, _, _) => { seen = c?.GetCertHashString(); return true; } },
        });
        foreach (var version in new[] { HttpVersion.Version11, HttpVersion.Version20 })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"https://b.example:{rig.Port}/sni") { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
            using var response = await client.SendAsync(request);
            Assert.Equal("A GET /sni", await response.Content.ReadAsStringAsync());
            Assert.Equal(version, response.Version);
            Assert.Equal(b.Thumbprint, seen);
        }
    }

    [Fact]
    public async Task ChainInTheCertificateFile_IsSentToClients()
    {
        using var root = TestCertificates.Authority("Test Root");
        using var intermediate = TestCertificates.IssuedAuthority(root, "Test Intermediate");
        using var leaf = TestCertificates.IssuedServer(intermediate, "chain.example");
        await using var rig = await TlsRig.StartAsync("""{ "Url": "https://127.0.0.1:0", "Certificate": "fullchain.pem", "CertificateKey": "privkey.pem" }""",
            dir => TestCertificates.WritePem(leaf, Path.Combine(dir.Root, "fullchain.pem"), Path.Combine(dir.Root, "privkey.pem"), intermediate));

        var handshake = await TlsProbe.HandshakeAsync(rig.Port, "chain.example");

        Assert.Equal(leaf.Thumbprint, handshake.Thumbprint);
        Assert.Contains("CN=Test Intermediate", handshake.SentChain);
    }
}
