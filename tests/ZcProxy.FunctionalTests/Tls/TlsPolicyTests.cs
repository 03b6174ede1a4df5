using System.Net.Security;
using System.Security.Authentication;

namespace ZcProxy.Tests.Tls;

public class TlsPolicyTests
{
    [Fact]
    public async Task MinTlsVersion13_RefusesTls12Clients()
    {
        using var server = TestCertificates.SelfSigned("v.example");
        await using var rig = await TlsRig.StartAsync("""
            { "Url": "https://127.0.0.1:0", "Certificate": "cert.pem", "CertificateKey": "key.pem", "MinTlsVersion": "TLSv1.3" }
            """, dir => TestCertificates.WritePem(server, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem")));

        await TlsProbe.AssertRefusedAsync(rig.Port, "v.example", o => o.EnabledSslProtocols = SslProtocols.Tls12);
        Assert.Equal(SslProtocols.Tls13, (await TlsProbe.HandshakeAsync(rig.Port, "v.example")).Protocol);
    }

    [Fact]
    public async Task DefaultPolicy_AcceptsTls12()
    {
        using var server = TestCertificates.SelfSigned("v.example");
        await using var rig = await TlsRig.StartAsync("""{ "Url": "https://127.0.0.1:0", "Certificate": "cert.pem", "CertificateKey": "key.pem" }""",
            dir => TestCertificates.WritePem(server, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem")));

        Assert.Equal(SslProtocols.Tls12, (await TlsProbe.HandshakeAsync(rig.Port, "v.example", o => o.EnabledSslProtocols = SslProtocols.Tls12)).Protocol);
    }

    [Theory]
    [InlineData("TLS_AES_256_GCM_SHA384", SslProtocols.Tls13, TlsCipherSuite.TLS_AES_256_GCM_SHA384)]
    [InlineData("TLS_CHACHA20_POLY1305_SHA256", SslProtocols.Tls13, TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256)]
    [InlineData("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", SslProtocols.Tls12, TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)]
    public async Task CipherSuites_OnlyTheConfiguredOnesAreNegotiated(string suite, SslProtocols clientProtocol, TlsCipherSuite expected)
    {
        using var server = TestCertificates.SelfSigned("c.example");
        await using var rig = await TlsRig.StartAsync($$"""
            { "Url": "https://127.0.0.1:0", "Certificate": "cert.pem", "CertificateKey": "key.pem",
              "CipherSuites": [ "{{suite}}", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" ] }
            """, dir => TestCertificates.WritePem(server, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem")));

        var handshake = await TlsProbe.HandshakeAsync(rig.Port, "c.example", o => o.EnabledSslProtocols = clientProtocol);

        Assert.Equal(expected, handshake.CipherSuite);
    }

    [Fact]
    public async Task CipherSuites_ClientWithoutACommonSuite_IsRefused()
    {
        using var server = TestCertificates.SelfSigned("c.example");
        await using var rig = await TlsRig.StartAsync("""
            { "Url": "https://127.0.0.1:0", "Certificate": "cert.pem", "CertificateKey": "key.pem",
              "CipherSuites": [ "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" ] }
            """, dir => TestCertificates.WritePem(server, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem")));

        await TlsProbe.AssertRefusedAsync(rig.Port, "c.example", o =>
        {
            o.EnabledSslProtocols = SslProtocols.Tls12;
            o.CipherSuitesPolicy = new CipherSuitesPolicy([TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]);
        });
        // TLS 1.3 suites are restricted only when the list names one (nginx's ssl_ciphers leaves them alone too).
        Assert.Equal(SslProtocols.Tls13, (await TlsProbe.HandshakeAsync(rig.Port, "c.example")).Protocol);
    }
}
