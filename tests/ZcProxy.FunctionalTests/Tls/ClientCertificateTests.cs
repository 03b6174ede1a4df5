using System.Security.Cryptography.X509Certificates;

namespace ZcProxy.Tests.Tls;

public class ClientCertificateTests
{
    [Fact]
    public async Task Required_RejectsClientsWithoutOrWithAForeignCertificate_AcceptsOneFromTheCa()
    {
        using var server = TestCertificates.SelfSigned("mtls.example");
        using var ca = TestCertificates.Authority("Client CA");
        using var otherCa = TestCertificates.Authority("Other CA");
        using var good = TestCertificates.IssuedClient(ca, "good client");
        using var foreign = TestCertificates.IssuedClient(otherCa, "foreign client");
        await using var rig = await TlsRig.StartAsync("""
            { "Url": "https://127.0.0.1:0", "Certificate": "cert.pem", "CertificateKey": "key.pem",
              "ClientCertificate": "required", "ClientCa": "client-ca.pem" }
            """, dir =>
        {
            TestCertificates.WritePem(server, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem"));
            File.WriteAllText(Path.Combine(dir.Root, "client-ca.pem"), ca.ExportCertificatePem());
        });

        await TlsProbe.AssertRefusedAsync(rig.Port, "mtls.example");
        await TlsProbe.AssertRefusedAsync(rig.Port, "mtls.example", o => o.ClientCertificates = [foreign]);
        var accepted = await TlsProbe.HandshakeAsync(rig.Port, "mtls.example", o => o.ClientCertificates = [good]);
        Assert.Equal(server.Thumbprint, accepted.Thumbprint);

        using var client = new HttpClient(new SocketsHttpHandler
        {
            SslOptions = { ClientCertificates = new X509CertificateCollection { good }, RemoteCertificateValidationCallback = (_, _, _, _) => true },
        });
        Assert.Equal("A GET /mtls", await client.GetStringAsync(rig.HttpsUrl + "/mtls"));
    }

    [Fact]
    public async Task Optional_ServesClientsWithout_RejectsAForeignCertificate()
    {
        using var server = TestCertificates.SelfSigned("mtls.example");
        using var ca = TestCertificates.Authority("Client CA");
        using var otherCa = TestCertificates.Authority("Other CA");
        using var foreign = TestCertificates.IssuedClient(otherCa, "foreign client");
        await using var rig = await TlsRig.StartAsync("""
            { "Url": "https://127.0.0.1:0", "Certificate": "cert.pem", "CertificateKey": "key.pem",
              "ClientCertificate": "optional", "ClientCa": "client-ca.pem" }
            """, dir =>
        {
            TestCertificates.WritePem(server, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem"));
            File.WriteAllText(Path.Combine(dir.Root, "client-ca.pem"), ca.ExportCertificatePem());
        });

        Assert.Equal(server.Thumbprint, (await TlsProbe.HandshakeAsync(rig.Port, "mtls.example")).Thumbprint);
        await TlsProbe.AssertRefusedAsync(rig.Port, "mtls.example", o => o.ClientCertificates = [foreign]);
    }
}
