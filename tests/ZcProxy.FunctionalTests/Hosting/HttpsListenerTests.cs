using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting;

public class HttpsListenerTests
{
    [Fact]
    public async Task HttpsListener_TerminatesTls_ForHttp11AndHttp2()
    {
        await using var a = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        WriteSelfSignedPem(Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem"));
        dir.WriteAtomically(dir.MainFile, $$"""
            { "Listen": [ { "Url": "https://127.0.0.1:0", "Certificate": "cert.pem", "CertificateKey": "key.pem" } ],
              "ReverseProxy": { "Routes": { "r": { "ClusterId": "a", "Match": { "Path": "/{**rest}" } } },
                                "Clusters": { {{ConfigDirectory.Cluster("a", ("a1", a.Url))}} } } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var httpsUrl = proxy.Url.Replace("http://", "https://");
        using var client = new HttpClient(new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
        });

        foreach (var version in new[] { HttpVersion.Version11, HttpVersion.Version20 })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, httpsUrl + "/secure") { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(version, response.Version);
            Assert.Equal("A GET /secure", await response.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task HttpsListener_WithoutCertificate_IsAConfigError()
    {
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, """{ "Listen": [ { "Url": "https://127.0.0.1:0" } ], "ReverseProxy": { } }""");

        var (code, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);

        Assert.Equal(1, code);
        Assert.Contains("$.Listen[0].Certificate: an https listener needs a PEM certificate", output);
    }

    private static void WriteSelfSignedPem(string certPath, string keyPath)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(certPath, cert.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
    }
}
