namespace ZcProxy.Tests.Tls;

public class TlsConfigCheckTests
{
    [Fact]
    public async Task Check_ReportsEveryTlsProblem_WithFileAndPath()
    {
        using var dir = new ConfigDirectory();
        using var a = TestCertificates.SelfSigned("a.example");
        using var b = TestCertificates.SelfSigned("b.example");
        TestCertificates.WritePem(a, Path.Combine(dir.Root, "a.pem"), Path.Combine(dir.Root, "a.key"));
        TestCertificates.WritePem(b, Path.Combine(dir.Root, "b.pem"), Path.Combine(dir.Root, "b.key"));
        dir.WriteAtomically(dir.MainFile, """
            { "Listen": [
                { "Url": "https://127.0.0.1:0", "Certificate": "a.pem", "CertificateKey": "b.key" },
                { "Url": "https://127.0.0.1:0", "Certificates": [
                    { "Certificate": "a.pem", "CertificateKey": "a.key", "Hosts": [ "a.example", "bad_name.example", "x.*.example" ] },
                    { "Certificate": "b.pem", "CertificateKey": "b.key", "Hosts": [ "A.example" ] } ],
                  "MinTlsVersion": "1.1", "CipherSuites": [ "ECDHE-RSA-AES128-GCM-SHA256" ], "ClientCertificate": "required",
                  "Protocols": "Http3" },
                { "Url": "https://127.0.0.1:0", "Certificate": "a.pem", "CertificateKey": "a.key", "ClientCertificate": "sometimes" },
                { "Url": "https://127.0.0.1:0", "Certificate": "a.pem", "CertificateKey": "a.key", "ClientCa": "a.pem" },
                { "Url": "https://127.0.0.1:0", "Certificate": "missing.pem" },
                { "Url": "http://127.0.0.1:0", "Certificate": "a.pem", "MinTlsVersion": "1.2" } ],
              "ReverseProxy": { } }
            """);

        var (code, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);

        Assert.Equal(1, code);
        string At(string path) => $"{dir.MainFile}: {path}: ";
        Assert.Contains(At("$.Listen[0].CertificateKey") + $"the private key in {Path.Combine(dir.Root, "b.key")} does not match the certificate in {Path.Combine(dir.Root, "a.pem")}", output);
        Assert.Contains(At("$.Listen[1].Certificates[0].Hosts[1]") + "'bad_name.example' must be a DNS name", output);
        Assert.Contains(At("$.Listen[1].Certificates[0].Hosts[2]") + "'x.*.example' a wildcard must be the whole first label", output);
        Assert.Contains(At("$.Listen[1].Certificates[1].Hosts[0]") + "'a.example' is already listed by Certificates[0]", output);
        Assert.Contains(At("$.Listen[1].MinTlsVersion") + "TLS 1.0 and 1.1 are not offered", output);
        Assert.Contains(At("$.Listen[1].CipherSuites[0]") + "'ECDHE-RSA-AES128-GCM-SHA256' is not an IANA cipher suite name", output);
        Assert.Contains(At("$.Listen[1].ClientCa") + "client certificates need the PEM file of the CAs", output);
        Assert.Contains(At("$.Listen[1].Protocols") + "'Http3' is not a protocol set", output);
        Assert.Contains(At("$.Listen[2].ClientCertificate") + "'sometimes' is not a mode", output);
        Assert.Contains(At("$.Listen[3].ClientCa") + "is only used with \"ClientCertificate\"", output);
        Assert.Contains(At("$.Listen[4].Certificate") + "cannot load the certificate: ", output);
        Assert.Contains(At("$.Listen[5].Certificate") + "TLS settings are only used by https:// listeners", output);
        Assert.Contains(At("$.Listen[5].MinTlsVersion") + "TLS settings are only used by https:// listeners", output);
    }

    [Fact]
    public async Task Check_AcceptsAFullTlsListener()
    {
        using var dir = new ConfigDirectory();
        using var a = TestCertificates.SelfSigned("a.example");
        using var ca = TestCertificates.Authority("Client CA");
        TestCertificates.WritePem(a, Path.Combine(dir.Root, "a.pem"), keyPath: null); // key in the same file
        File.WriteAllText(Path.Combine(dir.Root, "ca.pem"), ca.ExportCertificatePem());
        dir.WriteAtomically(dir.MainFile, """
            { "Listen": [ { "Url": "https://127.0.0.1:0", "Certificate": "a.pem",
                            "Certificates": [ { "Certificate": "a.pem", "Hosts": [ "a.example", "*.a.example" ] } ],
                            "MinTlsVersion": "1.3", "CipherSuites": [ "TLS_AES_128_GCM_SHA256" ],
                            "ClientCertificate": "optional", "ClientCa": "ca.pem", "OcspStapling": true, "Protocols": "Http1" } ],
              "ReverseProxy": { } }
            """);

        var (code, output) = await ProxyProcess.RunAsync("check", "--config", dir.MainFile);

        Assert.True(code == 0, output);
        Assert.Contains("configuration OK", output);
    }
}
