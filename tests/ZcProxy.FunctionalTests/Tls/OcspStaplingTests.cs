using System.Security.Cryptography.X509Certificates;
using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Hosting;

namespace ZcProxy.Tests.Tls;

/// <summary>
/// OCSP stapling against a responder on this machine: `openssl ocsp` answers from an index of the test CA, behind a
/// test origin that serves the certificate's authorityInfoAccess URL. (Real CAs' responders need internet access.)
/// </summary>
public class OcspStaplingTests
{
    [Fact]
    public async Task OcspStapling_StaplesTheResponderAnswer_OnlyWhereEnabled()
    {
        using var dir = new ConfigDirectory();
        using var ca = TestCertificates.Authority("OCSP Test CA");
        File.WriteAllText(Path.Combine(dir.Root, "ca.pem"), ca.ExportCertificatePem());
        File.WriteAllText(Path.Combine(dir.Root, "ca.key"), ca.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        int requests = 0;
        await using var responder = await TestOrigin.StartAsync("ocsp", app => app.MapMethods("/{**request}", ["GET", "POST"], async (HttpContext context, string? request) =>
        {
            Interlocked.Increment(ref requests);
            byte[] der;
            if (HttpMethods.IsPost(context.Request.Method))
            {
                using var body = new MemoryStream();
                await context.Request.Body.CopyToAsync(body);
                der = body.ToArray();
            }
            else der = Convert.FromBase64String(Uri.UnescapeDataString(request!)); // RFC 6960 A.1: base64, then URL-encoded
            return Results.Bytes(await AnswerAsync(dir.Root, der), "application/ocsp-response");
        }));
        using var leaf = TestCertificates.IssuedServerWithOcsp(ca, responder.Url + "/", "ocsp.example");
        File.WriteAllText(Path.Combine(dir.Root, "index.txt"),
            $"V\t{leaf.NotAfter.ToUniversalTime():yyMMddHHmmss}Z\t\t{leaf.SerialNumber}\tunknown\t/CN=ocsp.example\n");
        TestCertificates.WritePem(leaf, Path.Combine(dir.Root, "fullchain.pem"), Path.Combine(dir.Root, "privkey.pem"), ca);
        dir.WriteAtomically(dir.MainFile, """
            { "Listen": [
                { "Url": "https://127.0.0.1:0", "Certificate": "fullchain.pem", "CertificateKey": "privkey.pem", "OcspStapling": true },
                { "Url": "https://127.0.0.1:0", "Certificate": "fullchain.pem", "CertificateKey": "privkey.pem" } ],
              "ReverseProxy": { } }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var ports = proxy.Get<ListenerRegistry>().ProxyEndPoints.Select(e => e.Port).ToArray();

        // .NET fetches the answer in the background: the first handshakes may go out without it.
        string stapled = "";
        await Poll.UntilAsync(async () => (stapled = await OpensslStatusAsync(ports[0])).Contains("OCSP Response Status: successful", StringComparison.Ordinal),
            "an OCSP response stapled to the handshake");
        Assert.Contains("Cert Status: good", stapled, StringComparison.Ordinal);
        Assert.True(requests > 0);

        Assert.Contains("OCSP response: no response sent", await OpensslStatusAsync(ports[1]), StringComparison.Ordinal);
    }

    /// <summary>`openssl ocsp` as a responder for one request (file in, file out), from the index of the test CA.</summary>
    private static async Task<byte[]> AnswerAsync(string root, byte[] request)
    {
        var id = Guid.NewGuid().ToString("N");
        var requestFile = Path.Combine(root, $"{id}.req");
        var responseFile = Path.Combine(root, $"{id}.resp");
        await File.WriteAllBytesAsync(requestFile, request);
        await RunAsync("openssl", "ocsp", "-index", Path.Combine(root, "index.txt"), "-CA", Path.Combine(root, "ca.pem"),
            "-rsigner", Path.Combine(root, "ca.pem"), "-rkey", Path.Combine(root, "ca.key"), "-reqin", requestFile, "-respout", responseFile);
        return await File.ReadAllBytesAsync(responseFile);
    }

    private static Task<string> OpensslStatusAsync(int port)
        => RunAsync("bash", "-c", $"openssl s_client -connect 127.0.0.1:{port} -servername ocsp.example -status </dev/null 2>/dev/null");

    private static async Task<string> RunAsync(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        _ = await process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return await output;
    }
}
