using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ZcProxy.Tests.Infrastructure;

/// <summary>Certificates the tests make themselves (CertificateRequest): self-signed leaves, CAs, and leaves they sign.</summary>
public static class TestCertificates
{
    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    /// <summary>A self-signed server certificate for <paramref name="dnsNames"/> (the first is also the CN), with its key.</summary>
    public static X509Certificate2 SelfSigned(params string[] dnsNames)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = ServerRequest(key, dnsNames);
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }

    /// <summary>A CA certificate with its key, able to sign certificates.</summary>
    public static X509Certificate2 Authority(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    /// <summary>A server certificate for <paramref name="dnsNames"/> signed by <paramref name="issuer"/>, with its key.</summary>
    public static X509Certificate2 IssuedServer(X509Certificate2 issuer, params string[] dnsNames) => IssuedServerWithOcsp(issuer, null, dnsNames);

    /// <summary>As above, naming <paramref name="ocspUrl"/> as its OCSP responder (authorityInfoAccess) when given.</summary>
    public static X509Certificate2 IssuedServerWithOcsp(X509Certificate2 issuer, string? ocspUrl, params string[] dnsNames)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = ServerRequest(key, dnsNames);
        if (ocspUrl is not null) request.CertificateExtensions.Add(new X509AuthorityInformationAccessExtension([ocspUrl], null));
        return Issue(issuer, request, key);
    }

    /// <summary>A client certificate (clientAuth) named <paramref name="name"/>, signed by <paramref name="issuer"/>, with its key.</summary>
    public static X509Certificate2 IssuedClient(X509Certificate2 issuer, string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ClientAuth], false));
        return Issue(issuer, request, key);
    }

    /// <summary>An intermediate CA signed by <paramref name="issuer"/>.</summary>
    public static X509Certificate2 IssuedAuthority(X509Certificate2 issuer, string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return Issue(issuer, request, key);
    }

    /// <summary>Writes the certificate (then <paramref name="chain"/>) and its key as PEM, replacing the files atomically like certbot.</summary>
    public static void WritePem(X509Certificate2 certificate, string certPath, string? keyPath, params X509Certificate2[] chain)
    {
        var pem = certificate.ExportCertificatePem() + "\n" + string.Concat(chain.Select(c => c.ExportCertificatePem() + "\n"));
        var key = certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem() + "\n";
        if (keyPath is null) pem += key;
        else WriteAtomically(keyPath, key);
        WriteAtomically(certPath, pem);
    }

    public static void WriteAtomically(string path, string text)
    {
        var temp = path + ".tmp~";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    private static CertificateRequest ServerRequest(ECDsa key, string[] dnsNames)
    {
        var request = new CertificateRequest($"CN={dnsNames[0]}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in dnsNames) san.AddDnsName(name);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ServerAuth], false));
        return request;
    }

    private static X509Certificate2 Issue(X509Certificate2 issuer, CertificateRequest request, ECDsa key)
    {
        var serial = RandomNumberGenerator.GetBytes(12);
        // Within the issuer's validity: Create refuses a notAfter past the issuer's, and an intermediate made by this
        // method a second earlier ends a second earlier (SniCertificateTests' chain failed so on a slow machine).
        var now = DateTimeOffset.UtcNow;
        var notBefore = Later(now.AddMinutes(-5), new DateTimeOffset(issuer.NotBefore.ToUniversalTime()));
        var notAfter = Earlier(now.AddDays(1), new DateTimeOffset(issuer.NotAfter.ToUniversalTime()));
        using var issued = request.Create(issuer, notBefore, notAfter, serial);
        return issued.CopyWithPrivateKey(key);
    }

    private static DateTimeOffset Later(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
    private static DateTimeOffset Earlier(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;
}
