using System.Security.Cryptography.X509Certificates;

namespace ZcProxy.Core.Configuration;

/// <summary>Loads an https listener's PEM certificate and key; relative paths are relative to the main config file.</summary>
internal static class ListenerCertificate
{
    public static X509Certificate2 Load(ListenerOptions listen, string baseDirectory)
    {
        var certificate = Path.GetFullPath(listen.Certificate!, baseDirectory);
        var key = listen.CertificateKey is null ? null : Path.GetFullPath(listen.CertificateKey, baseDirectory);
        return X509Certificate2.CreateFromPemFile(certificate, key);
    }
}
