using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ZcProxy.Core.Configuration;

/// <summary>Loads an https listener's PEM certificate and key; relative paths are relative to the main config file.</summary>
internal static class ListenerCertificate
{
    /// <summary>
    /// The certificate with its private key, or null with the reason added to <paramref name="errors"/> (at
    /// <c>{jsonPath}.Certificate</c> or <c>.CertificateKey</c>). `check` and the start both load through here.
    /// </summary>
    public static X509Certificate2? TryLoad(ListenerOptions listen, string mainFile, string jsonPath, List<ConfigError> errors)
    {
        if (string.IsNullOrWhiteSpace(listen.Certificate))
        {
            errors.Add(new(mainFile, jsonPath + ".Certificate", "an https listener needs a PEM certificate file (and CertificateKey unless the key is in the same file)"));
            return null;
        }
        var baseDirectory = Path.GetDirectoryName(Path.GetFullPath(mainFile))!;
        var certificatePath = Path.GetFullPath(listen.Certificate, baseDirectory);
        var keyPath = listen.CertificateKey is null ? null : Path.GetFullPath(listen.CertificateKey, baseDirectory);
        X509Certificate2 certificate;
        try
        {
            certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            errors.Add(new(mainFile, jsonPath + ".Certificate", $"cannot load the certificate: {e.Message}"));
            return null;
        }
        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            errors.Add(new(mainFile, jsonPath + ".CertificateKey", "the certificate has no private key"));
            return null;
        }
        return certificate;
    }
}
