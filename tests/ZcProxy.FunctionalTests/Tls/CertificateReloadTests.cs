using System.Diagnostics;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Tests.Tls;

public class CertificateReloadTests
{
    private const string Listener = """{ "Url": "https://127.0.0.1:0", "Certificate": "cert.pem", "CertificateKey": "key.pem" }""";

    [Fact]
    public async Task RenewedCertificateWrittenOnDisk_IsServedWithoutRestartOrSignal()
    {
        using var first = TestCertificates.SelfSigned("site.example");
        using var renewed = TestCertificates.SelfSigned("site.example");
        await using var rig = await TlsRig.StartAsync(Listener, dir => TestCertificates.WritePem(first, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem")));
        Assert.Equal(first.Thumbprint, (await TlsProbe.HandshakeAsync(rig.Port, "site.example")).Thumbprint);

        rig.Write(renewed, "cert.pem", "key.pem"); // as certbot does: new files in place of the old ones, no reload asked

        await Poll.UntilAsync(async () => (await TlsProbe.HandshakeAsync(rig.Port, "site.example")).Thumbprint == renewed.Thumbprint,
            "the renewed certificate to be served");
    }

    [Fact]
    public async Task Reload_RereadsThePemFiles()
    {
        using var first = TestCertificates.SelfSigned("site.example");
        using var renewed = TestCertificates.SelfSigned("site.example");
        await using var rig = await TlsRig.StartAsync(Listener, dir => TestCertificates.WritePem(first, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem")));

        rig.Write(renewed, "cert.pem", "key.pem");
        var outcome = await rig.Proxy.Get<FileConfigProvider>().ReloadAsync("SIGHUP");

        Assert.True(outcome.Applied, string.Join("\n", outcome.Errors));
        Assert.Equal(renewed.Thumbprint, (await TlsProbe.HandshakeAsync(rig.Port, "site.example")).Thumbprint);
    }

    [Fact]
    public async Task MismatchedPair_IsRejected_OldCertificateStays_UntilTheKeyArrives()
    {
        using var first = TestCertificates.SelfSigned("site.example");
        using var renewed = TestCertificates.SelfSigned("site.example");
        await using var rig = await TlsRig.StartAsync(Listener, dir => TestCertificates.WritePem(first, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem")));
        var provider = rig.Proxy.Get<FileConfigProvider>();

        // Half-way through a renewal: the new certificate is in place, its key is not yet.
        TestCertificates.WritePem(renewed, rig.PathOf("cert.pem"), rig.PathOf("new-key.pem"));
        var rejected = await provider.ReloadAsync("SIGHUP");

        Assert.False(rejected.Applied);
        Assert.Contains(rejected.Errors, e => e.Contains("$.Listen[0].CertificateKey: the private key in", StringComparison.Ordinal)
                                              && e.Contains("does not match the certificate in", StringComparison.Ordinal));
        Assert.Equal(first.Thumbprint, (await TlsProbe.HandshakeAsync(rig.Port, "site.example")).Thumbprint);

        File.Copy(rig.PathOf("new-key.pem"), rig.PathOf("key.pem"), overwrite: true);
        var applied = await provider.ReloadAsync("SIGHUP");

        Assert.True(applied.Applied, string.Join("\n", applied.Errors));
        Assert.Equal(renewed.Thumbprint, (await TlsProbe.HandshakeAsync(rig.Port, "site.example")).Thumbprint);
    }

    [Fact]
    public async Task BrokenCertificateFile_IsRejected_OldCertificateStays()
    {
        using var first = TestCertificates.SelfSigned("site.example");
        await using var rig = await TlsRig.StartAsync(Listener, dir => TestCertificates.WritePem(first, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem")));

        TestCertificates.WriteAtomically(rig.PathOf("cert.pem"), "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
        var rejected = await rig.Proxy.Get<FileConfigProvider>().ReloadAsync("file change");

        Assert.False(rejected.Applied);
        Assert.Contains(rejected.Errors, e => e.Contains("$.Listen[0].Certificate: cannot load the certificate", StringComparison.Ordinal));
        Assert.Equal(first.Thumbprint, (await TlsProbe.HandshakeAsync(rig.Port, "site.example")).Thumbprint);
    }

    [Fact]
    public async Task Sighup_ServesTheRenewedCertificate_SeenByOpensslSClient()
    {
        using var first = TestCertificates.SelfSigned("site.example");
        using var renewed = TestCertificates.SelfSigned("site.example");
        using var dir = new ConfigDirectory();
        TestCertificates.WritePem(first, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem"));
        TlsRig.WriteMain(dir, Listener, "http://127.0.0.1:9");
        using var proxy = ProxyProcess.Start(["--config", dir.MainFile]);
        var port = new Uri((await proxy.WaitForLineAsync(@"proxy listening on (https://\S+)")).Groups[1].Value).Port;
        Assert.Equal(first.Thumbprint, await OpensslFingerprintAsync(port, "site.example"));

        TestCertificates.WritePem(renewed, Path.Combine(dir.Root, "cert.pem"), Path.Combine(dir.Root, "key.pem"));
        proxy.Signal("HUP");

        await Poll.UntilAsync(async () => await OpensslFingerprintAsync(port, "site.example") == renewed.Thumbprint, "openssl to see the renewed certificate");
        Assert.False(proxy.HasExited);
        Assert.Contains("serving certificate CN=site.example (sha1 " + renewed.Thumbprint, proxy.Output, StringComparison.Ordinal);
    }

    /// <summary>The SHA-1 fingerprint (hex, no colons) of the certificate `openssl s_client` is served for <paramref name="serverName"/>.</summary>
    private static async Task<string> OpensslFingerprintAsync(int port, string serverName)
    {
        var info = new ProcessStartInfo("bash", ["-c",
            $"openssl s_client -connect 127.0.0.1:{port} -servername {serverName} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha1"])
        { RedirectStandardOutput = true };
        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        var at = output.IndexOf('=', StringComparison.Ordinal);
        return at < 0 ? "" : output[(at + 1)..].Trim().Replace(":", "", StringComparison.Ordinal);
    }
}
