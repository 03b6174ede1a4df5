using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Tls;

/// <summary>
/// A certificate with its private key and the rest of its chain, read from PEM files the way nginx's ssl_certificate
/// reads them: the certificate file holds the leaf first, then the intermediates (certbot's fullchain.pem); the key
/// is in its own file or in the same one.
/// </summary>
internal sealed record PemCertificate(X509Certificate2 Leaf, X509Certificate2Collection Intermediates)
{
    /// <summary>
    /// Loads a pair; on failure adds one error (at <c>{jsonPath}.Certificate</c> or <c>.CertificateKey</c>) saying which
    /// file and why, and returns null. Paths are relative to <paramref name="baseDirectory"/>.
    /// </summary>
    public static PemCertificate? TryLoad(string certificate, string? key, string baseDirectory, string file, string jsonPath, List<ConfigError> errors)
    {
        var certificatePath = Path.GetFullPath(certificate, baseDirectory);
        var keyPath = key is null ? null : Path.GetFullPath(key, baseDirectory);
        var all = new X509Certificate2Collection();
        try
        {
            all.ImportFromPemFile(certificatePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            errors.Add(new(file, jsonPath + ".Certificate", $"cannot load the certificate: {e.Message} ({certificatePath})"));
            return null;
        }
        if (all.Count == 0)
        {
            errors.Add(new(file, jsonPath + ".Certificate", $"cannot load the certificate: no PEM certificate in {certificatePath}"));
            return null;
        }
        X509Certificate2 leaf;
        try
        {
            leaf = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            // .NET says "does not match" both for another key of the same algorithm and for a key of another algorithm.
            var reason = e.Message.Contains("does not match", StringComparison.OrdinalIgnoreCase)
                ? $"the private key in {keyPath ?? certificatePath} does not match the certificate in {certificatePath}"
                : $"cannot load the private key: {e.Message} ({keyPath ?? certificatePath})";
            errors.Add(new(file, jsonPath + (keyPath is null ? ".Certificate" : ".CertificateKey"), reason));
            return null;
        }
        if (!leaf.HasPrivateKey)
        {
            leaf.Dispose();
            errors.Add(new(file, jsonPath + ".CertificateKey", $"no private key for the certificate in {certificatePath}"));
            return null;
        }
        var intermediates = new X509Certificate2Collection();
        for (int i = 1; i < all.Count; i++) intermediates.Add(all[i]);
        return new PemCertificate(leaf, intermediates);
    }

    /// <summary>The DNS names the leaf is issued for (subjectAltName, else the subject's CN), lower-cased.</summary>
    public IReadOnlyList<string> DnsNames()
    {
        var names = new List<string>();
        foreach (var extension in Leaf.Extensions)
            if (extension is X509SubjectAlternativeNameExtension san)
                names.AddRange(san.EnumerateDnsNames().Select(n => n.ToLowerInvariant()));
        if (names.Count == 0 && Leaf.GetNameInfo(X509NameType.DnsName, forIssuer: false) is { Length: > 0 } cn)
            names.Add(cn.ToLowerInvariant());
        return names;
    }
}
